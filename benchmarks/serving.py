"""Serving: text-search throughput and latency over HTTP with 1, 8 and 32 concurrent clients.

    python benchmarks/serving.py [--quick] [--model DIR] [--items 100000] [--seconds 20] [--json OUT]

A catalog index of the wanted size is made from the model's own embeddings (benchmarks/search.py's
augmented vectors, item metadata pointing at the synthetic catalog's images), `unifashion serve` is
started on it as a user would, and closed-loop clients on loopback (keep-alive connections, each
sending its next query as soon as the last is answered, distinct texts) run for a bounded time per
concurrency level. Latency is the client's wall time per request. The clients share the machine's
cores with the server. Target at 100k items with 8 clients: p99 <= 50 ms.

Afterwards the two parts of a text search are timed in-process, one query at a time and in batches
of 8 (what the service's batcher forms under load): the text encoder and the index search. Per query
in batches, their sum is the CPU time the server needs per request, which bounds its throughput.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from common import (Report, RESULTS, add_model_argument, catalog_pairs, load_model, parser, percentile, run,
                    synthetic_world)
from search import WORK as SEARCH_WORK, augmented_vectors, base_embeddings

WORK = RESULTS / "serving"


def query_texts() -> list[str]:
    """Distinct shopper queries: colour x pattern x garment (no two requests in a row repeat a text)."""
    from unifashion.data.synthetic.taxonomy import CATEGORIES, PATTERNS
    from unifashion.data.vocabulary import COLOURS

    garments = [sub.replace("_", " ") for subs in CATEGORIES.values() for sub in subs]
    return [f"a {c} {p} {g}" for g in garments for c in COLOURS for p in PATTERNS]


def make_index(model, model_dir: Path, world: Path, n: int) -> Path:
    """A catalog index of n items from the augmented embeddings (cached by model, world and size)."""
    from unifashion.search.catalog_index import CatalogIndex, CatalogItem, model_fingerprint

    fingerprint = model_fingerprint(model)
    key = hashlib.sha256(f"{fingerprint}|{world.name}|{n}".encode()).hexdigest()[:12]
    root = WORK / f"index-{key}"
    if (root / "manifest.json").is_file():
        return root
    base_key = hashlib.sha256(f"{fingerprint}|{world.name}".encode()).hexdigest()[:12]
    base_path = SEARCH_WORK / f"serving-base-{base_key}.npz"
    SEARCH_WORK.mkdir(parents=True, exist_ok=True)
    if base_path.is_file():
        with np.load(base_path, allow_pickle=False) as z:
            base = z["images"]
    else:
        print("encoding the catalog ...", flush=True)
        base, _ = base_embeddings(model, world, 1)
        np.savez(base_path, images=base)
    vectors = augmented_vectors(base, n, SEARCH_WORK / f"serving-vectors-{base_key}-{n}.npy")
    pairs = catalog_pairs(world)
    items = [CatalogItem(item_id=f"item{i:07d}", product_id=f"p{i:07d}", category=pairs[i % len(pairs)].category,
                         subcategory=pairs[i % len(pairs)].subcategory, title=pairs[i % len(pairs)].title,
                         image_path=str(Path(pairs[i % len(pairs)].image.path).resolve())) for i in range(n)]
    print(f"building a {n}-item index in {root} ...", flush=True)
    index = CatalogIndex.create(root, fingerprint=fingerprint, model_source=str(model_dir.resolve()),
                                num_queries=vectors.shape[1], embed_dim=vectors.shape[2], overwrite=True)
    index.add(items, vectors, None)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, model_dir: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "unifashion", "serve", "--index", str(index), "--model",
                               str(model_dir), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().strip()[-500:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("the server did not answer /health within 10 minutes")


def load(port: int, clients: int, seconds: float, texts: list[str]) -> dict:
    """Closed-loop clients for `seconds`: every request's latency, errors counted (none expected)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = c
        while time.perf_counter() < stop:
            body = json.dumps({"text": texts[i % len(texts)], "k": 10})
            i += clients
            t = time.perf_counter()
            try:
                conn.request("POST", "/api/search/text", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[c] += 1
                    continue
            except OSError:
                errors[c] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies[c].append(time.perf_counter() - t)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    flat = [x for per in latencies for x in per]
    if not flat:
        raise RuntimeError(f"no request succeeded with {clients} clients ({sum(errors)} errors)")
    return {"clients": clients, "requests": len(flat), "errors": sum(errors), "requests_per_s": len(flat) / wall,
            "p50_ms": 1000 * percentile(flat, 50), "p99_ms": 1000 * percentile(flat, 99),
            "max_ms": 1000 * max(flat)}


def timed(fn, inputs) -> list[float]:
    """Wall seconds of fn(x) for each x."""
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


def in_process_costs(model_dir: Path, index_dir: Path, texts: list[str], rounds: int) -> dict:
    """Median ms per query of encode_text and of the index search, one at a time and in batches of 8."""
    import torch

    from common import median
    from unifashion.search.catalog_index import CatalogIndex
    from unifashion.models.unified import UniFashion

    model = UniFashion.from_pretrained(model_dir).eval()
    index = CatalogIndex.open(index_dir)
    out = {}
    with torch.inference_mode():
        for batch in (1, 8):
            chunks = [texts[i:i + batch] for i in range(0, batch * rounds, batch)]
            embeds = [model.encode_text(c).text_embeds.float().numpy()[:, None, :] for c in chunks]  # (b, 1, E)
            model.encode_text(chunks[0]), index.search(embeds[0], 10)  # warm-up
            encode = median(timed(model.encode_text, chunks))
            search = median(timed(lambda q: index.search(q, 10), embeds))
            out[f"encode_ms_batch{batch}"] = 1000 * encode / batch
            out[f"search_ms_batch{batch}"] = 1000 * search / batch
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    p.add_argument("--items", type=int, default=None, help="catalog size (default 100000; quick: 20000)")
    p.add_argument("--seconds", type=float, default=None, help="load time per concurrency level (default 20; quick: 4)")
    args = p.parse_args()
    n = args.items or (20_000 if args.quick else 100_000)
    seconds = args.seconds or (4.0 if args.quick else 20.0)

    model, model_name, model_dir = load_model(args.model)
    if model_dir is None:  # the untrained embedded model: saved once to serve it
        model_dir = WORK / "model-embedded"
        if not (model_dir / "config.json").is_file():
            model.save_pretrained(model_dir)
    world = synthetic_world(RESULTS / "worlds", 120)
    index = make_index(model, model_dir, world, n)
    del model
    texts = query_texts()
    report = Report("serving", args.quick, setup={"model": model_name, "items": n, "seconds_per_level": seconds,
                                                  "distinct_queries": len(texts), "k": 10,
                                                  "endpoint": "POST /api/search/text"})
    port = free_port()
    print(f"starting unifashion serve on {n} items ...", flush=True)
    server = start_server(index, model_dir, port)
    try:
        load(port, 1, min(2.0, seconds), texts)  # warm-up
        by_clients = {}
        for clients in (1, 8, 32):
            by_clients[clients] = load(port, clients, seconds, texts)
            report.row(**by_clients[clients])
    finally:
        server.terminate()
        server.wait(30)
    costs = in_process_costs(model_dir, index, texts, 8 if args.quick else 30)
    report.setup["in_process_ms_per_query"] = costs
    per_request = costs["encode_ms_batch8"] + costs["search_ms_batch8"]
    report.note(f"in-process, ms per query: text encoder {costs['encode_ms_batch1']:.1f} alone, "
                f"{costs['encode_ms_batch8']:.1f} in batches of 8; index search {costs['search_ms_batch1']:.1f} "
                f"alone, {costs['search_ms_batch8']:.1f} in batches of 8: ~{per_request:.0f} ms of the server's "
                f"cores per request, so 8 closed-loop clients wait >= ~{8 * per_request:.0f} ms each "
                f"(p50 measured {by_clients[8]['p50_ms']:.0f} ms)")
    report.target(f"{n} items, 8 clients: p99 latency", by_clients[8]["p99_ms"], 50.0, higher_is_better=False,
                  unit=" ms")
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
