"""Soak test: `unifashion serve` as a user runs it, under mixed load from several clients for a while.

    python scripts/soak.py [--index DIR --model DIR] [--seconds 600] [--clients 4] [--json FILE]

Without --index it builds a small one first (a 60-product synthetic world and the quickstart model,
captions capped at 8 tokens) in a temporary folder. The server runs in a subprocess on a free loopback
port; every client thread loops over the same mix of requests (searches of every kind, captions,
classification, generations of 1-2 steps, item pictures, /health, and three deliberately bad requests
whose 4xx is expected). An error is any other status, a malformed answer, or a failed connection.
The server's resident memory (VmRSS in /proc/PID/status) is read after the warm-up and at the end.

Prints a table (and JSON with --json); exits 1 when there was an error, the server died, or its
memory grew by more than --max-growth (10%) between the two readings. The server is always stopped.
"""
from __future__ import annotations

import argparse
import atexit
import http.client
import io
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

TEXTS = ["a red dress", "blue striped shirt", "black leather boots", "a green floral skirt", "white sneakers",
         "a grey wool coat", "navy slim jeans", "a pink hoodie", "brown sandals", "a long-sleeved black top"]
MODIFY = ["in red", "with long sleeves", "shorter", "in navy with stripes", "without a pattern"]
LABELS = "dress,shirt,sneakers,bag,coat"


@dataclass
class Request:
    name: str
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    expect: int = 200  # the status that counts as right
    check: str | None = None  # a key the JSON answer must have


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict = field(default_factory=lambda: defaultdict(int))
    errors: dict = field(default_factory=lambda: defaultdict(int))
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    examples: list = field(default_factory=list)  # the first few errors, one line each

    def add(self, name: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.counts[name] += 1
            self.latencies[name].append(seconds)
            if error:
                self.errors[name] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{name}: {error}")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, content_type) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def request_mix(item_ids: list[str], photo: bytes, steps: int) -> list[Request]:
    """One round of the mix; the heavy calls (caption, generate) are a small share of it."""
    def js(data: dict) -> tuple[bytes, str]:
        return json.dumps(data).encode(), "application/json"

    def form(fields: dict, with_photo: bool = True, data: bytes = photo) -> tuple[bytes, str]:
        return multipart(fields, {"file": ("photo.png", data, "image/png")} if with_photo else {})

    mix = []
    for i in range(10):
        item = item_ids[i % len(item_ids)]
        text, modify = TEXTS[i % len(TEXTS)], MODIFY[i % len(MODIFY)]
        mix += [
            Request("health", "GET", "/health", check="items"),
            Request("text", "POST", "/api/search/text", *js({"text": text, "k": 10}), check="results"),
            Request("image", "POST", "/api/search/image", *form({"k": "10"}), check="results"),
            Request("composed", "POST", "/api/search/composed", *js({"item_id": item, "modify": modify, "k": 10}),
                    check="results"),
            Request("item-image", "GET", f"/items/{quote(item, safe='/')}/image"),
        ]
        if i % 2 == 0:
            mix += [
                Request("image+modify", "POST", "/api/search/image", *form({"k": "10", "modify": modify}),
                        check="results"),
                Request("image-to-text", "POST", "/api/search/image-to-text", *form({"k": "10"}), check="results"),
                Request("classify", "POST", "/api/classify", *form({"labels": LABELS}), check="labels"),
                Request("categories", "GET", "/api/categories", check="categories"),
            ]
        if i % 5 == 0:
            mix += [
                Request("caption", "POST", "/api/caption", *form({"item_id": item, "style": "short"}, False),
                        check="caption"),
                Request("generate", "POST", "/api/generate",
                        *js({"text": text, "steps": 1 + i % steps, "seed": i}), check="image"),
                Request("bad-image", "POST", "/api/search/image", *form({"k": "3"}, data=b"not an image"), expect=400),
                Request("unknown-item", "GET", "/items/no-such-item/image", expect=404),
                Request("bad-k", "POST", "/api/search/text", *js({"text": text, "k": 0}), expect=422),
            ]
    return mix


def call(base: tuple[str, int], request: Request, timeout: float = 120.0) -> str | None:
    """Send one request on a new connection; None when the answer is the expected one, else why not."""
    connection = http.client.HTTPConnection(*base, timeout=timeout)
    try:
        headers = {"Content-Type": request.content_type} if request.content_type else {}
        connection.request(request.method, request.path, body=request.body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"connection failed: {type(exc).__name__}: {exc}"
    finally:
        connection.close()
    if response.status != request.expect:
        return f"status {response.status} (expected {request.expect}): {data[:200]!r}"
    if response.headers.get_content_type() == "application/json":
        try:
            answer = json.loads(data)
        except ValueError:
            return "not JSON"
        if request.check and request.check not in answer:
            return f"no {request.check!r} in the answer"
        if request.expect >= 400 and not isinstance(answer.get("detail"), str):
            return "an error without a one-line detail"
    elif request.expect == 200 and not data:
        return "an empty answer"
    return None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_small_index(folder: Path) -> tuple[Path, Path]:
    """A 60-product world, the quickstart model (saved) and its index; returns (model dir, index dir)."""
    import torch

    from unifashion.data.synthetic.products import CatalogConfig
    from unifashion.data.synthetic.world import WorldConfig, write_world
    from unifashion.search.index_build import build_index, items_from_data
    from unifashion.models.model_config import load_config
    from unifashion.models.unified import UniFashion

    torch.manual_seed(0)
    write_world(folder / "world", WorldConfig(CatalogConfig(products=60, seed=5), image_size=64, workers=2))
    model = UniFashion.from_config(load_config("quickstart", {"captioner": {"max_new_tokens": 8}}))
    model_dir = model.save_pretrained(folder / "model")
    items = items_from_data(folder / "world")[::3]
    build_index(model, items, folder / "index", model_source=str(model_dir))
    return model_dir, folder / "index"


class Server:
    """`unifashion serve` in a subprocess, stopped by stop(), at exit, or on SIGTERM."""

    def __init__(self, model: Path, index: Path, log: Path, max_steps: int):
        self.port = free_port()
        self.base = ("127.0.0.1", self.port)
        self.log_file = open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "unifashion", "serve", "--index", str(index), "--model", str(model),
             "--port", str(self.port), "--max-steps", str(max_steps)],
            stdout=self.log_file, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.log = log
        atexit.register(self.stop)

    def wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}): {self.tail()}")
            try:
                connection = http.client.HTTPConnection(*self.base, timeout=5)
                connection.request("GET", "/health")
                response = connection.getresponse()
                if response.status == 200:
                    return json.loads(response.read())
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health within {timeout:g} s: {self.tail()}")
            time.sleep(0.25)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        self.log_file.flush()
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.log_file.close()


def soak(model: Path | None, index: Path | None, seconds: float = 600, clients: int = 4,
         warmup: float | None = None, steps: int = 2, max_growth: float = 0.10, workdir: Path | None = None) -> dict:
    """Run the soak; returns the summary (also for tests/e2e/test_soak.py)."""
    with tempfile.TemporaryDirectory(prefix="unifashion-soak-") as tmp:
        work = Path(workdir or tmp)
        if index is None:
            print("building a small index ...", file=sys.stderr)
            model, index = build_small_index(work)
        elif model is None:  # the model the index's manifest names
            model = Path(json.loads((Path(index) / "manifest.json").read_text())["model"]["source"])
        server = Server(model, index, work / "server.log", max_steps=steps)
        try:
            started = time.perf_counter()
            health = server.wait_ready(180)
            ready_s = time.perf_counter() - started
            return _load(server, health, ready_s, seconds, clients, warmup, steps, max_growth)
        finally:
            server.stop()


def _load(server: Server, health: dict, ready_s: float, seconds: float, clients: int, warmup: float | None,
          steps: int, max_growth: float) -> dict:
    from PIL import Image

    # the items to ask about, and a photo of one of them, through the API itself
    probe = server.base
    connection = http.client.HTTPConnection(*probe, timeout=60)
    connection.request("POST", "/api/search/text", body=json.dumps({"text": "clothes", "k": 20}),
                       headers={"Content-Type": "application/json"})
    item_ids = [hit["item_id"] for hit in json.loads(connection.getresponse().read())["results"]]
    connection.close()
    connection = http.client.HTTPConnection(*probe, timeout=60)
    connection.request("GET", f"/items/{quote(item_ids[0], safe='/')}/image")
    picture = Image.open(io.BytesIO(connection.getresponse().read())).convert("RGB")
    connection.close()
    buffer = io.BytesIO()
    picture.resize((96, 96)).save(buffer, "PNG")
    mix = request_mix(item_ids, buffer.getvalue(), steps)

    tally = Tally()
    for request in {r.name: r for r in mix}.values():  # every kind once before the clock starts
        start = time.perf_counter()
        error = call(probe, request)
        tally.add(request.name, time.perf_counter() - start, error)

    warmup = min(60.0, max(10.0, 0.1 * seconds)) if warmup is None else warmup
    begin = time.monotonic()
    end = begin + seconds
    stop = threading.Event()

    def client(offset: int) -> None:
        for request in itertools.islice(itertools.cycle(mix), offset * 7, None):
            if stop.is_set() or time.monotonic() >= end:
                return
            start = time.perf_counter()
            error = call(probe, request)
            tally.add(request.name, time.perf_counter() - start, error)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    samples = []  # (seconds since the start, RSS KiB)
    rss_start = None
    while any(t.is_alive() for t in threads):
        now = time.monotonic() - begin
        if not server.alive():
            stop.set()
            break
        samples.append((round(now, 1), rss_kib(server.process.pid)))
        if rss_start is None and now >= warmup:
            rss_start = samples[-1][1]
        time.sleep(1.0)
    for thread in threads:
        thread.join(150)
    alive = server.alive()
    rss_end = rss_kib(server.process.pid) if alive else None
    if rss_start is None:
        rss_start = samples[-1][1] if samples else None
    growth = (rss_end - rss_start) / rss_start if alive and rss_start else None
    try:
        health_after = server.wait_ready(10) if alive else None
    except RuntimeError:
        health_after = None

    requests = sum(tally.counts.values())
    errors = sum(tally.errors.values())
    per_endpoint = {name: {"requests": tally.counts[name], "errors": tally.errors[name],
                           "median_ms": round(1000 * statistics.median(tally.latencies[name]), 1),
                           "max_ms": round(1000 * max(tally.latencies[name]), 1)} for name in sorted(tally.counts)}
    return {
        "seconds": seconds, "clients": clients, "warmup_seconds": warmup, "items": health["items"],
        "ready_seconds": round(ready_s, 1), "requests": requests, "errors": errors,
        "requests_per_second": round(requests / seconds, 1), "error_examples": tally.examples,
        "server_alive": alive and health_after is not None,
        "rss_start_mib": round(rss_start / 1024, 1) if rss_start else None,
        "rss_end_mib": round(rss_end / 1024, 1) if rss_end else None,
        "rss_max_mib": round(max(s[1] for s in samples) / 1024, 1) if samples else None,
        "rss_growth_percent": round(100 * growth, 2) if growth is not None else None,
        "max_growth_percent": round(100 * max_growth, 2),
        "ok": bool(alive and errors == 0 and growth is not None and growth <= max_growth),
        "per_endpoint": per_endpoint,
        "rss_samples_mib": [(t, round(kib / 1024, 1)) for t, kib in samples[:: max(1, len(samples) // 60)]],
    }


def print_table(summary: dict) -> None:
    print(f"{'endpoint':<14} {'requests':>9} {'errors':>7} {'median ms':>10} {'max ms':>9}")
    for name, row in summary["per_endpoint"].items():
        print(f"{name:<14} {row['requests']:>9} {row['errors']:>7} {row['median_ms']:>10} {row['max_ms']:>9}")
    print(f"{'total':<14} {summary['requests']:>9} {summary['errors']:>7}   "
          f"({summary['requests_per_second']} requests/s over {summary['seconds']:g} s, {summary['clients']} clients)")
    print(f"server RSS: {summary['rss_start_mib']} MiB after the {summary['warmup_seconds']:g} s warm-up, "
          f"{summary['rss_end_mib']} MiB at the end (max {summary['rss_max_mib']}): "
          f"growth {summary['rss_growth_percent']}% (limit {summary['max_growth_percent']}%)")
    for line in summary["error_examples"]:
        print(f"error: {line}")
    print("OK" if summary["ok"] else "FAILED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="an index folder (default: build a small one)")
    parser.add_argument("--model", type=Path, help="the model that built --index (default: its manifest's)")
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the clients run (default 600)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--warmup", type=float, help="seconds before the first memory reading (default 10%% of "
                                                       "--seconds, between 10 and 60)")
    parser.add_argument("--steps", type=int, default=2, help="most denoising steps per generation (default 2)")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth (default 0.10)")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args()
    if args.model is not None and args.index is None:
        parser.error("--model needs --index")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs the finally blocks: the server is stopped
    summary = soak(args.model, args.index, args.seconds, args.clients, args.warmup, args.steps, args.max_growth)
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
