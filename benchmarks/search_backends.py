"""The catalog index's backends side by side on the same vectors: built-in (IVF-PQ candidates + exact
re-scoring), Qdrant edge (in-process engine) and qdrant-client local mode.

    python benchmarks/search_backends.py [--quick] [--model DIR] [--sizes 100000] [--local-sizes 20000]
                                         [--queries 200] [--json OUT]

Vectors and queries are benchmarks/search.py's (the model's image query vectors of the synthetic
catalog, augmented to the size; its text embeddings as queries; cached under bench-results/search/).
Per backend and size, each step in a fresh process:
  build    built-in: `MultiVectorIndex.build_ann`; Qdrant: upserting every item (query vectors, pooled
           vector) and the engine's HNSW graph over the pooled vectors (edge: `optimize`), seconds and
           peak memory;
  search   opening what was built, text queries at batch 1 (k = 10; p50/p99 after a warm-up pass),
           recall@10 against exact max-over-queries scoring, resident memory after the queries.
Local mode scans every item in numpy on each query (no first stage): it is measured at --local-sizes.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from common import Report, RESULTS, add_model_argument, load_model, parser, percentile, rss_gib, run, synthetic_world
from search import WORK, _peak_rss_gib, augmented_vectors, base_embeddings, exact_numpy, in_fresh_process, recall

K = 10


def _catalog_items(n: int):
    from unifashion.search.catalog_index import CatalogItem

    categories = ("dresses", "tops", "bottoms", "shoes", "bags")
    return [CatalogItem(item_id=f"item-{i:07d}", category=categories[i % len(categories)]) for i in range(n)]


def _location(kind: str, folder: Path):
    from unifashion.search.qdrant_index import QdrantLocation

    return QdrantLocation(edge=str(folder / "shard")) if kind == "edge" else QdrantLocation(path=str(folder / "local"))


# ---- steps (each in a fresh process) ------------------------------------------------------------------

def build_builtin(vectors_path: str, ann_path: str) -> dict:
    import faiss

    from unifashion.search.vector_index import AnnConfig, MultiVectorIndex

    vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    start = time.perf_counter()
    faiss.write_index(MultiVectorIndex.build_ann(vectors, AnnConfig()), ann_path)
    return {"build_s": time.perf_counter() - start, "build_peak_rss_gib": _peak_rss_gib()}


def search_builtin(vectors_path: str, ann_path: str, queries: np.ndarray) -> dict:
    import faiss

    from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, VectorFile

    index = MultiVectorIndex(VectorFile(vectors_path), AnnConfig(), faiss.read_index(ann_path))
    return _timed(lambda q: index.search(q[None, None, :], K)[1][0], queries)


def build_qdrant(kind: str, vectors_path: str, folder: str) -> dict:
    from unifashion.search.qdrant_index import QdrantIndex, QdrantSettings

    vectors = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    n, q, e = vectors.shape
    shutil.rmtree(folder, ignore_errors=True)
    folder = Path(folder)
    start = time.perf_counter()
    index = QdrantIndex.start(folder / "index", _location(kind, folder), fingerprint="bench", model_source="bench",
                              num_queries=q, embed_dim=e, captions=False, settings=QdrantSettings())
    index.upsert(_catalog_items(n), vectors, None,
                 progress=lambda what, done, total: done % 65536 < 256 and print(f"    upsert {done}/{total}", flush=True))
    upserted = time.perf_counter() - start
    if kind == "edge":
        index.collection.shard.optimize()  # the HNSW graph and merged segments, before the first search
    index.finish()
    out = {"build_s": time.perf_counter() - start, "upsert_s": upserted, "build_peak_rss_gib": _peak_rss_gib()}
    index.collection.close()
    return out


def search_qdrant(folder: str, queries: np.ndarray) -> dict:
    from unifashion.search.index_folder import open_index
    from unifashion.search.vector_index import Reduce

    index = open_index(Path(folder) / "index")
    rows = lambda q: [int(it.item_id.split("-")[1]) for it, _ in index.search(q[None, None, :], K, reduce=Reduce.MAX)[0]]
    return _timed(rows, queries)


def _timed(search, queries: np.ndarray) -> dict:
    for q in queries[:8]:  # warm-up
        search(q)
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(np.asarray(search(q))[:K])
        times.append(time.perf_counter() - t)
    return {"p50_ms": 1000 * percentile(times, 50), "p99_ms": 1000 * percentile(times, 99),
            "search_rss_gib": rss_gib(), "found": np.array([np.pad(f, (0, K - len(f)), constant_values=-1) for f in found])}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    p.add_argument("--sizes", default=None, help="item counts for built-in and edge (default 100000; quick: 5000)")
    p.add_argument("--local-sizes", default=None, help="item counts for local mode (default 20000; quick: 2000)")
    p.add_argument("--queries", type=int, default=None, help="text queries (default 200; quick: 32)")
    args = p.parse_args()
    sizes = [int(s) for s in (args.sizes or ("5000" if args.quick else "100000")).split(",")]
    local_sizes = {int(s) for s in (args.local_sizes or ("2000" if args.quick else "20000")).split(",") if s}
    n_queries = args.queries or (32 if args.quick else 200)

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
    del model
    report = Report("search_backends", args.quick, setup={
        "model": model_name, "real_items": len(base), "vectors_per_item": base.shape[1], "dim": base.shape[2],
        "queries": len(queries), "k": K, "qdrant_first_stage": "HNSW over the pooled (mean) query vector, "
        "QdrantSettings().candidates_for(n) candidates re-scored by MAX_SIM (exact below 20000 items)"})
    work = RESULTS / "search_backends"
    results = {}
    for n in sorted(set(sizes) | local_sizes):
        vectors_path = WORK / f"vectors-{key}-{n}.npy"
        print(f"{n} items: vectors ...", flush=True)
        vectors = augmented_vectors(base, n, vectors_path)
        truth = np.concatenate([exact_numpy(vectors, queries[s:s + 64], K) for s in range(0, len(queries), 64)])
        kinds = (["builtin", "edge"] if n in sizes else []) + (["local"] if n in local_sizes else [])
        for kind in kinds:
            print(f"{n} items, {kind}: build ...", flush=True)
            if kind == "builtin":
                ann_path = str(work / f"ann-{key}-{n}.faiss")
                work.mkdir(parents=True, exist_ok=True)
                built = in_fresh_process(build_builtin, str(vectors_path), ann_path)
                print(f"{n} items, {kind}: search ...", flush=True)
                searched = in_fresh_process(search_builtin, str(vectors_path), ann_path, queries)
            else:
                folder = str(work / f"{kind}-{key}-{n}")
                built = in_fresh_process(build_qdrant, kind, str(vectors_path), folder)
                print(f"{n} items, {kind}: search ...", flush=True)
                searched = in_fresh_process(search_qdrant, folder, queries)
            found = searched.pop("found")
            results[(kind, n)] = row = dict(backend=kind, items=n, **built, **searched,
                                            **{"recall@10": recall(found, truth, K)})
            report.row(**row)
    n = max(sizes)
    report.target(f"{n} items: Qdrant edge recall@10 against exact", results[("edge", n)]["recall@10"], 0.95, unit="")
    report.notes.append(f"{n} items, p50 at batch 1: built-in {results[('builtin', n)]['p50_ms']:.1f} ms, "
                        f"edge {results[('edge', n)]['p50_ms']:.1f} ms")
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
