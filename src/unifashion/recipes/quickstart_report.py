"""The quickstart's report (its stage 9): the demo's targets judged, the pictures of what the trained
model does, and the page (report.md and report.html, built from evaluation/report.py's parts).

Stages: 1. pictures (loss curves, searches, composed searches, captions, generations, try-ons) under
OUT/report_img  2. the page: wall time, sizes, the targets table, the pictures, every metric before and
after training.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.samples import ImageRef
from unifashion.evaluation import sheets
from unifashion.evaluation.evaluate import EvalDetails, first_view_per_product
from unifashion.evaluation.model_scores import (image_embeddings, max_over_queries, said_captions, text_embeddings,
                                               triplet_query_text)
from unifashion.evaluation.report import figure_html, figure_markdown, html_page, html_table, markdown_table, write_pages


# The demo's targets (issue 18): (metric, rule, value). Rules: ">=" / "<=" a number; "<=before" at most
# `value` x the untrained model's; ">=before+" at least the untrained model's + `value`; "of:<key>" at least
# `value` x the trained model's `key` (a ceiling measured the same way on real images).
TARGETS = (("cmr.sample100.short_draws", "<=", 0.0), ("cmr.sample100.r1", ">=", 60.0),
           ("cir.gallery_min", ">=", 300.0), ("cir.avg.score", ">=", 60.0), ("cir.avg.score", ">=before+", 25.0),
           ("cap.bleu4", ">=", 25.0), ("cap.cider", ">=", 150.0), ("cap.attr.category", ">=", 0.95),
           ("cap.attr.colour", ">=", 0.80), ("cap.loops", "<=", 0.02),
           ("gen.probe.category", "of:gen.probe.category_real", 0.8), ("gen.probe.colour", "of:gen.probe.colour_real", 0.7),
           ("gen.samples", ">=", 500.0), ("gen.image_size", ">=", 64.0),
           ("gen.fid", "<=before", 0.25), ("gen.kid_mean", "<=before", 0.25),
           ("tryon.psnr_outside", ">=", 25.0), ("tryon.probe.colour", "of:tryon.probe.colour_real", 0.7))


def with_derived(metrics: dict) -> dict:
    """Adds cmr.sample100.r1: the mean of the two directions' R@1."""
    out = dict(metrics)
    if "cmr.sample100.i2t.r1" in out and "cmr.sample100.t2i.r1" in out:
        out["cmr.sample100.r1"] = (out["cmr.sample100.i2t.r1"] + out["cmr.sample100.t2i.r1"]) / 2
    return out


def target_rows(before: dict, after: dict) -> list[dict]:
    """One row per target: the untrained and trained values, the target in words (with its threshold
    worked out) and whether it is met. A metric the run did not measure is a row marked not met."""
    rows = []
    for key, rule, value in TARGETS:
        b, a = before.get(key), after.get(key)
        if rule.startswith("of:"):
            ceiling = after.get(rule[3:])
            goal = None if ceiling is None else value * ceiling
            text = f">= {value:g} x {rule[3:]}" + (f" = {goal:.3f}" if goal is not None else "")
            met = a is not None and goal is not None and a >= goal
        elif rule == "<=before":
            goal = None if b is None else value * b
            text = f"<= {value:g} x untrained" + (f" = {goal:.3g}" if goal is not None else "")
            met = a is not None and goal is not None and a <= goal
        elif rule == ">=before+":
            goal = None if b is None else b + value
            text = f">= untrained + {value:g}" + (f" = {goal:.1f}" if goal is not None else "")
            met = a is not None and goal is not None and a >= goal
        else:
            text = f"{rule} {value:g}"
            met = a is not None and (a >= value if rule == ">=" else a <= value)
        rows.append({"metric": key, "untrained": b, "trained": a, "target": text, "met": bool(met)})
    return rows


# 1. pictures


def loss_curves(out: Path, path: Path) -> None:
    """One small line chart per phase (total loss against step) from each run's metrics.jsonl."""
    runs = sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []
    w, h, pad = 260, 160, 28
    sheet = Image.new("RGB", (w * max(1, len(runs)), h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, run in enumerate(runs):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        x0 = i * w
        draw.text((x0 + pad, 4), f"{run.name}: total loss", fill="black", font=sheets.font(11))
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
        draw.text((x0 + 2, pad - 6), f"{hi:.2f}", fill="black", font=sheets.font(9))
        draw.text((x0 + 2, h - pad - 6), f"{lo:.2f}", fill="black", font=sheets.font(9))
        draw.text((x0 + pad, h - pad + 4), f"step {steps[0]}..{steps[-1]}", fill="black", font=sheets.font(9))
    sheet.save(path)


def _rank(order: np.ndarray, hit) -> int | None:
    """1-based rank of the first index in `order` for which hit(index) holds."""
    for r, i in enumerate(order, 1):
        if hit(int(i)):
            return r
    return None


def retrieval_rows(model, world: Path, n: int = 4, top: int = 5, gallery_products: int = 300) -> list:
    """Text -> image search over the images of the first `gallery_products` validation products."""
    pairs = catalog.load(world / "catalog", split="val")
    kept = set(list(dict.fromkeys(p.product_id for p in pairs))[:gallery_products])
    pairs = [p for p in pairs if p.product_id in kept]
    products = first_view_per_product(pairs)
    queries = products[:: max(1, len(products) // n)][:n]
    scores = max_over_queries(image_embeddings(model, [p.image for p in pairs]),
                              text_embeddings(model, [q.caption for q in queries]))  # (N, n)
    rows = []
    for r, q in enumerate(queries):
        order = np.argsort(-scores[:, r], kind="stable")
        right = lambda i: pairs[i].product_id == q.product_id  # noqa: E731
        rows.append(sheets.RetrievalRow(q.caption, [pairs[i].image.load() for i in order[:top]],
                                        [right(int(i)) for i in order[:top]], _rank(order, right), len(pairs)))
    return rows


def composed_rows(model, world: Path, gallery_captions: dict[str, str], category: str, n: int = 4,
                  top: int = 5) -> list:
    """Composed retrieval on validation triplets of one category, ranked as the evaluation ranks them
    (query-image score + query-caption score), over the whole category gallery."""
    from unifashion.evaluation.protocols import combine_scores

    root = world / "fashioniq"
    triplets = [t for t in fashioniq.load(root, "val", category) if t.target_id is not None]
    triplets = triplets[:: max(1, len(triplets) // n)][:n]
    gallery = fashioniq.load_image_split(root, category, "val")
    refs = [ImageRef(fashioniq.image_path(root, name)) for name in gallery]
    g = image_embeddings(model, refs)  # (G, Q, E)
    texts = [triplet_query_text(t) for t in triplets]
    with torch.no_grad():
        q = model.encode_composed([t.reference.load() for t in triplets], texts).composed_embeds.float().cpu().numpy()
    scores = np.einsum("qe,gke->qgk", q, g).max(axis=2)  # (n, G)
    if all(name in gallery_captions for name in gallery):
        scores = combine_scores(scores, q @ text_embeddings(model, said_captions(gallery_captions, gallery)).T)
    rows = []
    for r, (t, text) in enumerate(zip(triplets, texts)):
        order = np.argsort(-scores[r], kind="stable")
        right = lambda i: gallery[i] == t.target_id  # noqa: E731
        rows.append(sheets.ComposedRow(t.reference.load(), text, [refs[i].load() for i in order[:top]],
                                       [right(int(i)) for i in order[:top]], t.target.load(), _rank(order, right),
                                       len(gallery)))
    return rows


def write_pictures(out: Path, model, world: Path, summary: dict, details: EvalDetails,
                   gallery_captions: dict[str, str], category: str) -> None:
    """The report's pictures (report_img/) and the examples' ranks in `summary["examples"]`; the composed
    searches are of the Fashion-IQ `category`."""
    img = out / "report_img"
    img.mkdir(exist_ok=True)
    loss_curves(out, img / "losses.png")
    searches = retrieval_rows(model, world)
    sheets.retrieval_sheet(searches).save(img / "retrieval.png")
    composed = composed_rows(model, world, gallery_captions, category)
    sheets.composed_sheet(composed).save(img / "composed.png")
    sheets.caption_sheet([sheets.CaptionRow(c["image"].load(), c["prediction"], c["reference"], c["flags"])
                          for c in details.captions]).save(img / "captions.png")
    sheets.generation_sheet([sheets.GenerationRow(g["real"].load(), g["generated"], g["text"], g["probe"])
                             for g in details.generations]).save(img / "generation.png")
    pictures = ["losses", "retrieval", "composed", "captions", "generation"]
    if details.tryons:
        sheets.tryon_sheet([sheets.TryOnRow(t["sample"].agnostic.load(), t["sample"].garment.load(), t["result"],
                                            t["sample"].person.load(), t["sample"].caption, t["psnr_outside"],
                                            t["colour"]) for t in details.tryons]).save(img / "tryon.png")
        pictures.append("tryon")
    summary["examples"] = {"retrieval_ranks": [r.rank for r in searches],
                           "composed_ranks": [r.target_rank for r in composed],
                           "composed_gallery": composed[0].gallery_size if composed else None,
                           "pictures": pictures}


# 2. the page

SECTIONS = {
    "losses": "Loss curves",
    "retrieval": "Text → image search (validation images; the right product framed green, its rank beside it)",
    "composed": "Composed retrieval (reference, modification, top results, and the target with its rank in "
                "the whole category gallery)",
    "captions": "Captions under their images (attributes the caption gets wrong in red, frame red when any is)",
    "generation": "Generated from the description (middle) beside the real product of that description (top); "
                  "the probe's reading of the generated image below",
    "tryon": "Try-on: masked person and garment in, the person wearing it out (right: the real photo)",
}


def write_page(out: Path, summary: dict) -> None:
    """OUT/report.md and OUT/report.html from the summary, the pictures that `write_pictures` drew."""
    before, after, targets = with_derived(summary["before"]), with_derived(summary["after"]), summary["targets"]
    keys = sorted(set(before) | set(after))
    fmt = sheets.format_value
    every_metric = [(k, fmt(before.get(k)), fmt(after.get(k))) for k in keys]
    timings = ", ".join(f"{k} {v} s" for k, v in summary["timings"].items())
    c = summary["config"]
    size_text = (f"{c['products']} synthetic products at {c['image_size']} px (train / held-out val / test by "
                 f"product); model config `{c['model_config']}`; steps: VAE {c['vae_steps']}, phase 1a "
                 f"{c['phase1a_steps']}, phase 1b {c['phase1b_steps']}, q2I-only {c['diffusion_steps']}, phase 2 "
                 f"{c['phase2_steps']}, try-on {c['tryon_steps']}")
    pictures = summary.get("examples", {}).get("pictures", [])
    md = ["# UniFashion quickstart report", "",
          f"Wall time: **{summary['seconds']:.0f} s** ({timings}).", "",
          f"Sizes: {size_text}. Trained model: `{summary['model']}`. Every number is on products training never "
          "saw (the world's validation split; try-on on VITON-HD test persons).", "",
          "## Targets", "", sheets.targets_table(targets), ""]
    for name in pictures:
        md += [*figure_markdown(SECTIONS[name], name, f"report_img/{name}.png"), ""]
    ex = summary.get("examples", {})
    if ex:
        md += [f"Right product's rank in the search examples: {ex['retrieval_ranks']}; target's rank in the "
               f"composed examples: {ex['composed_ranks']} (of {ex['composed_gallery']}).", ""]
    md += ["## Every metric", "", *markdown_table(("metric", "untrained", "trained"), every_metric)]
    esc = html.escape
    figures = "".join(figure_html(SECTIONS[n], f"report_img/{n}.png") for n in pictures)
    write_pages(out, md, html_page(
        "UniFashion quickstart",
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto}td,th{padding:2px 8px}img{max-width:100%}",
        f"<h1>UniFashion quickstart report</h1><p>Wall time: {summary['seconds']:.0f} s ({esc(timings)})</p>"
        f"<p>Sizes: {esc(size_text)}. Trained model: <code>{esc(summary['model'])}</code>.</p>"
        f"<h2>Targets</h2>{sheets.targets_table_html(targets)}{figures}"
        f"<h2>Every metric</h2>{html_table(every_metric, ('metric', 'untrained', 'trained'))}"))
