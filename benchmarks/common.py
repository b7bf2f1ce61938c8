"""What every benchmark shares: its arguments, the machine, the model and data it runs on, timing,
targets marked met or not met, a printed table and a JSON file.

Each benchmark compares two ways of doing the same work in one run and reports their ratio: our
machines are shared and noisy, so absolute times drift while ratios hold.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
QUICKSTART_MODEL = ROOT / "quickstart" / "model"
PROCESS_START = time.perf_counter()  # set on import, at the benchmark's start: its "seconds" count everything


@dataclass(frozen=True)
class Target:
    name: str  # the ratio, e.g. "encode_image / backbone (images/s)"
    measured: float
    target: float
    higher_is_better: bool = True
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{self.name}: {self.measured:.3g}{self.unit} (target {sign} {self.target:g}{self.unit}) " \
               f"{'met' if self.met else 'NOT met'}"


@dataclass
class Report:
    """Rows of measurements, the targets, and where they came from; `finish` prints and writes them."""
    topic: str
    quick: bool
    setup: dict = field(default_factory=dict)  # model, data sizes, settings
    rows: list[dict] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = PROCESS_START  # the whole run: loading and data too

    def row(self, **values) -> None:
        self.rows.append(values)
        print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in values.items()), flush=True)

    def target(self, name: str, measured: float, target: float, *, higher_is_better: bool = True,
               unit: str = "x") -> Target:
        t = Target(name, float(measured), float(target), higher_is_better, unit)
        self.targets.append(t)
        return t

    def note(self, text: str) -> None:
        self.notes.append(text)

    def finish(self, json_path: Path | None) -> dict:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        if self.rows:
            table = Table(title=f"{self.topic}{' (quick)' if self.quick else ''}")
            header, body = table_layout(self.rows)
            for j, h in enumerate(header):
                table.add_column(h, justify="right" if isinstance(body[0][j], (int, float)) else "left")
            for line in body:
                table.add_row(*(_fmt(v) for v in line))
            console.print(table)
        for t in self.targets:
            console.print(("[green]" if t.met else "[red]") + t.describe(), highlight=False, markup=True)
        for n in self.notes:
            console.print(f"note: {n}", highlight=False, markup=False)
        result = {"topic": self.topic, "quick": self.quick, "seconds": round(time.perf_counter() - self.started, 1),
                  "command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "machine": machine(),
                  "setup": self.setup, "rows": self.rows,
                  "targets": [dict(asdict(t), met=t.met) for t in self.targets], "notes": self.notes}
        path = json_path if json_path is not None else RESULTS / f"{self.topic}{'-quick' if self.quick else ''}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)  # never a half-written result
        console.print(f"wrote {path} ({result['seconds']} s)", highlight=False)
        return result


def table_layout(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Header and lines of a results table: a column per measurement, or, with more than 7, a line per
    measurement and a column per run (wide tables read better that way)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if len(columns) <= 7:
        return columns, [[r.get(c, "") for c in columns] for r in rows]
    return (["measure"] + [f"run {i + 1}" for i in range(len(rows))],
            [[c] + [r.get(c, "") for r in rows] for c in columns])


def count_flops(fn) -> int:
    """Floating-point operations of fn() as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    # not under no_grad: FlopCounterMode's module tracker then fails on expanded parameters (torch 2.13)
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def paper_encoder_and_qformer():
    """The paper's image side for FLOP counts: (EVA ViT-g/14 at 224 px on the meta device: shapes only,
    its pixels (1, 3, 224, 224) on meta, the 12-layer BLIP-2 Q-Former with random weights, image tokens
    (1, 257, 1408)). The Q-Former is built for real (~130M parameters): its attention masks are checked
    by value, which meta tensors cannot do."""
    import torch

    from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig
    from unifashion.models.qformer import QFormer, QFormerConfig

    with torch.device("meta"):  # ViT-g: 1B parameters
        encoder = FrozenImageEncoder(ImageEncoderConfig(backbone="blip2_vision", image_size=224, random_init=True))
        pixels = torch.empty(1, 3, 224, 224)  # (1, 3, 224, 224)
    qformer = QFormer.from_config(QFormerConfig(hidden_size=768, num_hidden_layers=12, intermediate_size=3072,
                                                encoder_hidden_size=1408, init="random"))
    tokens = torch.randn(1, encoder.num_tokens, 1408)  # (1, 257, 1408)
    return encoder, pixels, qformer, tokens


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: finishes in under 2 minutes")
    p.add_argument("--json", type=Path, default=None,
                   help="where to write the result (default bench-results/<topic>[-quick].json)")
    return p


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="a trained model directory (default: quickstart/model when `make demo` has made it, "
                        "else the untrained embedded model)")


def run(main) -> None:
    """Run a benchmark's main(); a failure is one line on stderr and exit status 1."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
    except Exception as exc:  # a benchmark's user wants the reason, not a traceback
        if os.environ.get("UNIFASHION_DEBUG"):
            raise
        sys.exit(f"error: {type(exc).__name__}: {exc}")


def machine() -> dict:
    """The machine the numbers came from."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": cores, "memory_gib": mem_gib, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": np.__version__}
    try:
        import faiss
        info["faiss"] = faiss.__version__
    except ImportError:
        pass
    return info


def load_model(path: Path | None):
    """(model, description, directory): the given model, else the quickstart's, else the untrained
    embedded one (directory None)."""
    from unifashion.models.unified import UniFashion

    if path is not None:
        return UniFashion.from_pretrained(path).eval(), str(path), Path(path)
    if QUICKSTART_MODEL.is_dir():
        return (UniFashion.from_pretrained(QUICKSTART_MODEL).eval(), str(QUICKSTART_MODEL.relative_to(ROOT)),
                QUICKSTART_MODEL)
    return UniFashion.from_config("embedded").eval(), "embedded (untrained: run `make demo` for a trained one)", None


def synthetic_world(out: Path, products: int, seed: int = 3) -> Path:
    """A synthetic world written once per size under bench-results/worlds (reused by later runs)."""
    from unifashion.data.synthetic.products import CatalogConfig
    from unifashion.data.synthetic.world import WorldConfig, write_world

    root = out / f"world-{products}-{seed}"
    if (root / "manifest.json").is_file():
        return root
    print(f"writing a synthetic world of {products} products to {root} ...", flush=True)
    write_world(root, WorldConfig(CatalogConfig(products=products, seed=seed)), overwrite=True)
    return root


def catalog_pairs(world: Path, limit: int | None = None):
    from unifashion.data.formats import catalog

    pairs = catalog.load(world / "catalog")
    return pairs[:limit] if limit else pairs


def seconds(fn, *, repeat: int, warmup: int = 1) -> list[float]:
    """Wall seconds of `repeat` calls of fn() after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


def percentile(xs, q: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q))


def rss_gib(field: str = "VmRSS") -> float:
    """This process's resident memory now, GiB: VmRSS (all), RssAnon (its own allocations) or RssFile
    (pages of memory-mapped files it touched: the kernel can drop them under pressure)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")
