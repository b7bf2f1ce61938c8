"""Search at 100k and 1M items: the approximate index against exact FAISS and naive numpy search.

    python benchmarks/search.py [--quick] [--model DIR] [--sizes 100000,1000000] [--queries 200] [--json OUT]

Items are the model's own embeddings: the synthetic catalog's images encoded (32 query vectors each),
then augmented to the wanted size by mixing two real items query by query and adding a little noise
(not isotropic random vectors, on which quantisation behaves far worse than on real data). Queries
are the model's text embeddings of catalog descriptions. Per size, in fresh processes:
  build   the IVF-PQ candidate index over every item vector (`MultiVectorIndex.build_ann`, the index's
          defaults): seconds and peak memory;
  search  a process that opens the vectors (float16, read row by row) and the saved index as `serve`
          does: resident memory after the queries, latency p50/p99 at batch 1 (a first pass, whose
          re-scored rows may come off the disk, then the measured pass with them in the page cache)
          and 64, and recall@10 / @50 against exact max-over-queries scoring;
  exact   naive numpy (exact scores of every item, blockwise) and exact FAISS (flat inner product
          over every item vector, streamed in blocks; an item's score is its best vector's) on a few
          of the same queries.
Targets at the largest size: approximate >= 20x faster than the faster exact search at batch 1 with
recall@10 >= 0.95, resident memory <= 4 GiB. Vectors are cached under bench-results/search/.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import time
from pathlib import Path

import numpy as np

from common import (Report, RESULTS, add_model_argument, catalog_pairs, load_model, parser, percentile, rss_gib,
                    run, synthetic_world)

WORK = RESULTS / "search"
K_MAX = 50


# ---- data -----------------------------------------------------------------------------------------

def base_embeddings(model, world: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Real image query vectors (n0, 32, E) of the catalog and text embeddings (q, E) of its descriptions."""
    import torch

    pairs = catalog_pairs(world)
    vectors = []
    with torch.inference_mode():
        for s in range(0, len(pairs), 64):
            batch = [p.image.load().convert("RGB") for p in pairs[s:s + 64]]
            vectors.append(model.encode_image(batch).image_embeds.float().numpy())  # (b, 32, E)
        texts = list(dict.fromkeys(p.extra.get("detailed", p.caption) for p in pairs))[:n_queries]
        queries = np.concatenate([model.encode_text(texts[s:s + 64]).text_embeds.float().numpy()
                                  for s in range(0, len(texts), 64)])  # (q, E)
    return np.concatenate(vectors).astype(np.float32), queries.astype(np.float32)


def augmented_vectors(base: np.ndarray, n: int, path: Path, seed: int = 0) -> np.memmap:
    """(n, 32, E) float16 on disk: the real items first, then mixtures of two real items plus noise,
    each vector renormalised (query embeddings are unit vectors)."""
    if path.is_file():
        return np.load(path, mmap_mode="r", allow_pickle=False)
    n0, v, e = base.shape
    rng = np.random.default_rng(seed)
    noise = 0.25 * float(base.std(axis=(0, 1)).mean())  # a quarter of a typical coordinate's spread
    tmp = path.with_name(path.name + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, v, e))
    out[:min(n, n0)] = base[:n]
    step = 32768
    for start in range(n0, n, step):
        c = min(step, n - start)
        a, b = rng.integers(n0, size=c), rng.integers(n0, size=c)
        mix = rng.uniform(0.0, 0.5, size=(c, 1, 1)).astype(np.float32)
        x = (1 - mix) * base[a] + mix * base[b]  # (c, 32, E)
        x += noise * rng.standard_normal(x.shape, dtype=np.float32)
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        out[start:start + c] = x
        if (start // step) % 8 == 0:
            print(f"    vectors {start + c}/{n}", flush=True)
    out.flush()
    del out
    tmp.rename(path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


# ---- exact references -------------------------------------------------------------------------------

def exact_numpy(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Top-k rows (B, k) by exact max-over-vectors scores, blockwise from the memmap (no float32 copy)."""
    from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, Reduce

    index = MultiVectorIndex(vectors, AnnConfig(chunk_items=8192))
    scores = index.scores(queries[:, None, :], np.arange(len(vectors)), Reduce.MAX)  # (B, N)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def exact_faiss(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Top-k items (B, k) by exact FAISS flat inner-product search over every item vector, streamed in
    blocks into one result heap; an item's score is its best vector's, so the first k distinct items
    among the top k*V vectors are exactly the top k items."""
    import faiss

    n, v, e = vectors.shape
    kv = k * v
    heap = faiss.ResultHeap(len(queries), kv, keep_max=True)
    threshold = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 1  # BLAS even for one query: several times faster flat search
    block = 8192
    for start in range(0, n, block):
        flat = np.ascontiguousarray(vectors[start:start + block], dtype=np.float32).reshape(-1, e)
        d, i = faiss.knn(queries, flat, min(kv, len(flat)), metric=faiss.METRIC_INNER_PRODUCT)
        if d.shape[1] < kv:
            d = np.pad(d, ((0, 0), (0, kv - d.shape[1])), constant_values=-np.inf)
            i = np.pad(i, ((0, 0), (0, kv - i.shape[1])), constant_values=-1)
        heap.add_result(d, np.where(i >= 0, i + start * v, -1))
    faiss.cvar.distance_compute_blas_threshold = threshold
    heap.finalize()
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for row, ids in enumerate(heap.I):
        items = list(dict.fromkeys(int(x) // v for x in ids if x >= 0))[:k]
        out[row, :len(items)] = items
    return out


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


# ---- the per-size work, each step in a fresh process ------------------------------------------------

def build_step(vectors_path: str, ann_path: str) -> dict:
    import faiss

    from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, default_nlist

    vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    config = AnnConfig()
    start = time.perf_counter()
    ann = MultiVectorIndex.build_ann(vectors, config)
    seconds = time.perf_counter() - start
    faiss.write_index(ann, ann_path)
    return {"build_s": seconds, "nlist": config.nlist or default_nlist(vectors.shape[0] * vectors.shape[1]),
            "ann_file_gib": Path(ann_path).stat().st_size / 2**30, "build_peak_rss_gib": _peak_rss_gib()}


def search_step(vectors_path: str, ann_path: str, queries: np.ndarray, exact_queries: int,
                settings: list[tuple[int, int]]) -> dict:
    import faiss

    from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, Reduce, VectorFile

    vectors = VectorFile(vectors_path)  # as a served index reads them
    ann = faiss.read_index(ann_path)
    index = MultiVectorIndex(vectors, AnnConfig(), ann)
    q = queries[:, None, :]  # (B, 1, E): text queries own one vector
    index.search(q[:1], K_MAX)  # warm-up
    # 1. approximate, batch 1, twice: first as the rows it re-scores come off the disk (unless the page
    # cache holds the vector file already, e.g. right after the build), then with them cached
    cold, single, found = [], [], []
    for times, keep in ((cold, False), (single, True)):
        for i in range(len(q)):
            t = time.perf_counter()
            _, rows = index.search(q[i:i + 1], K_MAX, reduce=Reduce.MAX)
            times.append(time.perf_counter() - t)
            if keep:
                found.append(rows[0])
    batched = []
    for s in range(0, len(q) - 63, 64):
        t = time.perf_counter()
        index.search(q[s:s + 64], K_MAX)
        batched.append(time.perf_counter() - t)
    # the serving process's memory: PQ codes and lists (anonymous), pages of the vectors touched (file)
    out = {"ann_p50_ms": 1000 * percentile(single, 50), "ann_p99_ms": 1000 * percentile(single, 99),
           "ann_first_pass_p50_ms": 1000 * percentile(cold, 50), "ann_first_pass_p99_ms": 1000 * percentile(cold, 99),
           "ann_batch64_ms": 1000 * float(np.median(batched)) if batched else float("nan"),
           "search_rss_gib": rss_gib(), "search_rss_anon_gib": rss_gib("RssAnon"),
           "search_rss_file_gib": rss_gib("RssFile")}
    # 2. exact references: ground truth for every query (batched), latency on a few at batch 1
    truth = np.concatenate([exact_numpy(vectors, queries[s:s + 64], K_MAX) for s in range(0, len(queries), 64)])
    out["recall@10"] = recall(np.array(found), truth, 10)
    out["recall@50"] = recall(np.array(found), truth, 50)
    # 3. other search-time settings on the same index: recall and latency at batch 1
    for nprobe, candidates in settings:
        other = MultiVectorIndex(vectors, AnnConfig(nprobe=nprobe, candidates=candidates), ann)
        times, rows_found = [], []
        for i in range(len(q)):
            t = time.perf_counter()
            rows_found.append(other.search(q[i:i + 1], K_MAX)[1][0])
            times.append(time.perf_counter() - t)
        tag = f"nprobe{nprobe}_cand{candidates}"
        out[f"{tag}_p50_ms"] = 1000 * percentile(times, 50)
        out[f"{tag}_recall@10"] = recall(np.array(rows_found), truth, 10)
    MultiVectorIndex(vectors, AnnConfig(), ann)  # the defaults back on the shared faiss index
    t_np, t_faiss, agree = [], [], []
    for i in range(exact_queries):
        t = time.perf_counter()
        exact_numpy(vectors, queries[i:i + 1], K_MAX)
        t_np.append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = exact_faiss(vectors, queries[i:i + 1], K_MAX)
        t_faiss.append(time.perf_counter() - t)
        agree.append(recall(rows, truth[i:i + 1], 10))
    b64 = queries[:64]
    t = time.perf_counter()
    exact_numpy(vectors, b64, K_MAX)
    out["numpy_batch64_ms"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    exact_faiss(vectors, b64, K_MAX)
    out["faiss_batch64_ms"] = 1000 * (time.perf_counter() - t)
    out.update({"numpy_p50_ms": 1000 * float(np.median(t_np)), "faiss_p50_ms": 1000 * float(np.median(t_faiss)),
                "faiss_agrees_with_numpy@10": float(np.mean(agree))})
    return out


def _peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def in_fresh_process(fn, *args):
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    p.add_argument("--sizes", default=None, help="item counts, comma-separated (default 100000,1000000; "
                                                 "quick: 20000)")
    p.add_argument("--queries", type=int, default=None, help="text queries (default 200; quick: 64)")
    p.add_argument("--settings", default="", help="more search-time settings to measure on the same index, "
                                                  "NPROBE:CANDIDATES,... (defaults: nprobe 64, candidates max(200, items/1250))")
    p.add_argument("--reuse-index", action="store_true", help="search an index built by an earlier run "
                                                              "(its build is not timed again)")
    args = p.parse_args()
    sizes = [int(s) for s in (args.sizes or ("20000" if args.quick else "100000,1000000")).split(",")]
    n_queries = args.queries or (64 if args.quick else 200)
    exact_queries = 3 if args.quick or max(sizes) > 200_000 else 10
    settings = [tuple(int(x) for x in pair.split(":")) for pair in args.settings.split(",") if pair]

    from unifashion.search.catalog_index import model_fingerprint

    model, model_name, _ = load_model(args.model)
    world = synthetic_world(RESULTS / "worlds", 120)
    WORK.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{model_fingerprint(model)}|{world.name}|{n_queries}".encode()).hexdigest()[:12]
    base_path = WORK / f"base-{key}.npz"
    if base_path.is_file():
        with np.load(base_path, allow_pickle=False) as z:
            base, queries = z["images"], z["queries"]
    else:
        print("encoding the catalog ...", flush=True)
        base, queries = base_embeddings(model, world, n_queries)
        np.savez(base_path, images=base, queries=queries)
    report = Report("search", args.quick, setup={
        "model": model_name, "real_items": len(base), "vectors_per_item": base.shape[1], "dim": base.shape[2],
        "queries": len(queries), "k": K_MAX, "exact_latency_queries": exact_queries,
        "ann": "IVF-PQ candidates (AnnConfig defaults) + exact max-over-queries re-scoring"})
    last = {}
    for n in sizes:
        vectors_path = WORK / f"vectors-{key}-{n}.npy"
        print(f"{n} items: vectors ...", flush=True)
        augmented_vectors(base, n, vectors_path)
        ann_path = WORK / f"ann-{key}-{n}.faiss"
        if args.reuse_index and ann_path.is_file():
            built = {"build_s": float("nan")}
        else:
            print(f"{n} items: building the index ...", flush=True)
            built = in_fresh_process(build_step, str(vectors_path), str(ann_path))
        print(f"{n} items: searching ...", flush=True)
        searched = in_fresh_process(search_step, str(vectors_path), str(ann_path), queries, exact_queries, settings)
        exact_ms = min(searched["numpy_p50_ms"], searched["faiss_p50_ms"])
        last = dict(items=n, **built, **searched, speedup_vs_exact=exact_ms / searched["ann_p50_ms"])
        report.row(**last)
    n = last["items"]
    report.target(f"{n} items: exact / approximate latency at batch 1", last["speedup_vs_exact"], 20.0)
    report.target(f"{n} items: recall@10 against exact", last["recall@10"], 0.95, unit="")
    report.target(f"{n} items: search process resident memory", last["search_rss_gib"], 4.0,
                  higher_is_better=False, unit=" GiB")
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
