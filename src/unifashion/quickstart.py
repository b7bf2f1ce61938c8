"""The quickstart: synthetic world -> every training phase -> evaluation before and after -> a report.

Stages: 1. synthetic world  2. untrained model, evaluated  3. phases vae, 1a, 1b, 2 (each saved;
the next starts from it)  4. gallery captions from images alone  5. trained model, evaluated
6. report (Markdown + HTML) with pictures. The trained model is left in OUT/model.
"""
from __future__ import annotations

import html
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.samples import ImageRef
from unifashion.data.synthetic.catalog import CatalogConfig
from unifashion.data.synthetic.world import WorldConfig, write_world
from unifashion.evaluation.evaluate import EvalConfig, evaluate_world, first_view_per_product
from unifashion.gallery_captions import caption_images
from unifashion.models.unified import UniFashion, load_config
from unifashion.training import phases
from unifashion.training.run import run_phase
from unifashion.training.trainer import TrainConfig

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class QuickstartConfig:
    model_config: str = "embedded"  # shipped config name or file
    products: int = 500  # synthetic products (1-4 images each)
    image_size: int = 128
    seed: int = 0
    batch_size: int = 16
    vae_steps: int = 150
    phase1a_steps: int = 200
    phase1b_steps: int = 60
    phase2_steps: int = 60
    evaluation: EvalConfig = field(default_factory=EvalConfig)


def run_quickstart(out: Path, config: QuickstartConfig = QuickstartConfig(),
                   progress: ProgressFn | None = None, log: Callable[[str], None] = print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        log(f"{name}: {timings[name]} s")
        return result

    # 1. the synthetic world
    world = out / "world"
    timed("synth", lambda: write_world(world, WorldConfig(CatalogConfig(products=config.products, seed=config.seed),
                                                          image_size=config.image_size), overwrite=True,
                                       progress=progress))
    # 2. the untrained model, evaluated
    model_config = load_config(config.model_config)
    untrained = UniFashion.from_config(model_config)
    before = timed("evaluate untrained", lambda: evaluate_world(untrained, world, config.evaluation, progress=progress))
    untrained = None  # free it before training
    # 3. the phases, each from the previous one's saved model
    cache = out / "feature_cache"
    previous = None
    steps = {"vae": config.vae_steps, "phase1a": config.phase1a_steps, "phase1b": config.phase1b_steps,
             "phase2": config.phase2_steps}
    chosen = {"vae": phases.AutoencoderPretraining(), "phase1a": phases.QFormerPretraining(),
              "phase1b": phases.GenerativeAdaptation(), "phase2": phases.ComposedFinetuning()}
    for name, phase in chosen.items():
        run_dir = out / "runs" / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train_config = TrainConfig(steps=steps[name], batch_size=config.batch_size, seed=config.seed,
                                   checkpoint_every=max(steps[name], 1), log_every=max(1, steps[name] // 20))
        timed(f"train {name}", lambda: run_phase(phase, world, run_dir, train_config, init=previous,
                                                 model_config=model_config, cache=cache, progress=progress is not None))
        previous = run_dir / "model"
    trained = UniFashion.from_pretrained(previous)
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    trained.save_pretrained(final)
    # 4. gallery captions of the validation images, from the images alone
    root = world / "fashioniq"
    names = sorted({n for c in fashioniq.categories(root) for n in fashioniq.load_image_split(root, c, "val")})
    gallery = timed("gallery captions", lambda: caption_images(
        trained, [(n, ImageRef(fashioniq.image_path(root, n))) for n in names], style="detailed",
        max_new_tokens=config.evaluation.max_new_tokens))
    (out / "gallery_captions.val.json").write_text(json.dumps(gallery, indent=1, sort_keys=True) + "\n")
    # 5. the trained model, evaluated
    after = timed("evaluate trained", lambda: evaluate_world(trained, world, config.evaluation,
                                                             gallery_captions=gallery, progress=progress))
    # 6. the report
    seconds = round(time.perf_counter() - start, 1)
    summary = {"config": asdict(config), "seconds": seconds, "timings": timings, "before": before, "after": after,
               "model": str(final)}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_report(out, trained, world, summary, config.evaluation.generation_steps)
    return summary


def _font(size: int = 11):
    return ImageFont.load_default(size=size)


def loss_curves(out: Path, path: Path) -> None:
    """One small line chart per phase (total loss against step) from each run's metrics.jsonl."""
    runs = sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []
    w, h, pad = 260, 160, 28
    sheet = Image.new("RGB", (w * max(1, len(runs)), h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, run in enumerate(runs):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        x0 = i * w
        draw.text((x0 + pad, 4), f"{run.name}: total loss", fill="black", font=_font())
        if len(rows) < 2:
            continue
        steps = [r["step"] for r in rows]
        totals = [r["total"] for r in rows]
        lo, hi = min(totals), max(totals)
        span = (hi - lo) or 1.0
        pts = [(x0 + pad + (s - steps[0]) / max(1, steps[-1] - steps[0]) * (w - 2 * pad),
                h - pad - (v - lo) / span * (h - 2 * pad)) for s, v in zip(steps, totals)]
        draw.line(pts, fill=(200, 30, 30), width=2)
        draw.rectangle([x0 + pad, pad, x0 + w - pad, h - pad], outline=(120, 120, 120))
        draw.text((x0 + 2, pad - 6), f"{hi:.2f}", fill="black", font=_font(9))
        draw.text((x0 + 2, h - pad - 6), f"{lo:.2f}", fill="black", font=_font(9))
        draw.text((x0 + pad, h - pad + 4), f"step {steps[0]}..{steps[-1]}", fill="black", font=_font(9))
    sheet.save(path)


def captions_sheet(model, world: Path, path: Path, n: int = 6) -> list[dict]:
    """Validation images with the trained model's professional caption and the true description."""
    pairs = first_view_per_product(catalog.load(world / "catalog", split="val"))[:n]
    images = [p.image.load() for p in pairs]
    captions = model.caption(images, "professional")
    cell, text_h = 200, 120
    sheet = Image.new("RGB", (cell * len(pairs), cell + text_h), "white")
    draw = ImageDraw.Draw(sheet)
    import textwrap

    for i, (im, p, c) in enumerate(zip(images, pairs, captions)):
        sheet.paste(im.convert("RGB").resize((cell - 8, cell - 8)), (i * cell + 4, 4))
        draw.multiline_text((i * cell + 4, cell), "\n".join(textwrap.wrap("model: " + c, 32)[:4]), fill="black",
                            font=_font(10))
        draw.multiline_text((i * cell + 4, cell + 62), "\n".join(textwrap.wrap("truth: " + p.caption, 32)[:4]),
                            fill=(90, 90, 90), font=_font(10))
    sheet.save(path)
    return [{"product_id": p.product_id, "caption": c, "truth": p.caption} for p, c in zip(pairs, captions)]


def generation_sheet(model, world: Path, path: Path, steps: int, n: int = 6) -> None:
    """Real validation images (top) beside images generated from their detailed descriptions (bottom)."""
    pairs = first_view_per_product(catalog.load(world / "catalog", split="val"))[:n]
    fake = model.generate(texts=[p.extra["detailed"] for p in pairs], steps=steps)
    cell = 128
    sheet = Image.new("RGB", (cell * len(pairs), 2 * cell), "white")
    for i, (p, g) in enumerate(zip(pairs, fake)):
        sheet.paste(p.image.load().convert("RGB").resize((cell, cell)), (i * cell, 0))
        sheet.paste(g.resize((cell, cell), Image.Resampling.NEAREST), (i * cell, cell))
    sheet.save(path)


def write_report(out: Path, model, world: Path, summary: dict, generation_steps: int) -> None:
    img = out / "report_img"
    img.mkdir(exist_ok=True)
    loss_curves(out, img / "losses.png")
    captions = captions_sheet(model, world, img / "captions.png")
    generation_sheet(model, world, img / "generation.png", generation_steps)
    keys = sorted(set(summary["before"]) | set(summary["after"]))
    rows = [(k, summary["before"].get(k), summary["after"].get(k)) for k in keys]
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    md = ["# UniFashion quickstart report", "",
          f"Wall time: **{summary['seconds']:.0f} s** ({', '.join(f'{k} {v} s' for k, v in summary['timings'].items())}).",
          f"Trained model: `{summary['model']}`. Configuration: `{json.dumps(summary['config'])}`", "",
          "| metric | untrained | trained |", "|---|---|---|"]
    md += [f"| {k} | {fmt(b)} | {fmt(a)} |" for k, b, a in rows]
    md += ["", "## Loss curves", "", "![losses](report_img/losses.png)", "",
           "## Captions (validation images)", "", "![captions](report_img/captions.png)", "",
           "## Generated (bottom) beside real (top)", "", "![generation](report_img/generation.png)", ""]
    (out / "report.md").write_text("\n".join(md))
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(b)}</td><td>{fmt(a)}</td></tr>" for k, b, a in rows)
    caps = "".join(f"<li>{html.escape(c['caption'])} <i>(truth: {html.escape(c['truth'])})</i></li>" for c in captions)
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>UniFashion quickstart</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:2px 8px}</style>"
        f"<h1>UniFashion quickstart report</h1><p>Wall time: {summary['seconds']:.0f} s</p>"
        f"<table><tr><th>metric</th><th>untrained</th><th>trained</th></tr>{table}</table>"
        "<h2>Loss curves</h2><img src='report_img/losses.png'>"
        f"<h2>Captions</h2><img src='report_img/captions.png'><ul>{caps}</ul>"
        "<h2>Generated (bottom) beside real (top)</h2><img src='report_img/generation.png'>")
