"""Start `unifashion serve` on an index as a user would and time text searches over HTTP.

    python scripts/serve_latency.py INDEX [--queries 20] [--k 10] [--port 8765]

Prints JSON: seconds until /health answered, then per-request wall time (client side, loopback) of
POST /api/search/text for distinct queries, one at a time: first, median and max, with the server's
own took_ms. The server is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

QUERIES = ["a red dress", "blue striped shirt", "black leather boots", "a green floral skirt", "white sneakers",
           "a grey wool coat", "yellow polka-dot blouse", "navy slim jeans", "a pink hoodie", "brown sandals",
           "a purple maxi dress", "orange check shirt", "beige trench coat", "a long-sleeved black top",
           "olive cargo trousers", "a short denim skirt", "a sleeveless summer dress", "striped knit sweater",
           "a checked scarf", "a plain white t-shirt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    base = f"http://127.0.0.1:{args.port}"
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "unifashion", "serve", "--index", str(args.index),
                               "--port", str(args.port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if server.poll() is not None:
                sys.exit(f"the server exited: {server.stderr.read().strip()}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    health = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.2)
        ready = time.perf_counter() - start
        walls, server_ms = [], []
        for i in range(args.queries):
            body = json.dumps({"text": QUERIES[i % len(QUERIES)], "k": args.k}).encode()
            request = urllib.request.Request(f"{base}/api/search/text", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as r:
                answer = json.loads(r.read())
            walls.append(1000 * (time.perf_counter() - t0))
            server_ms.append(answer["took_ms"])
            assert len(answer["results"]) == min(args.k, health["items"])
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps({"index": str(args.index), "items": health["items"], "ready_seconds": round(ready, 1),
                      "queries": len(walls), "first_ms": round(walls[0], 1),
                      "median_ms": round(statistics.median(walls), 1), "max_ms": round(max(walls), 1),
                      "server_took_ms_median": round(statistics.median(server_ms), 1)}, indent=2))


if __name__ == "__main__":
    main()
