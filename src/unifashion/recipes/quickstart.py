"""The quickstart: synthetic world -> every training phase -> evaluation before and after -> a report.

Stages: 1. synthetic world (training products and ~3x as many held-out ones, so that every protocol has
the data it needs)  2. the captioner's tokenizer from the training captions  3. untrained model,
evaluated  4. phases vae, 1a, 1b, extra q2I-only steps for the generator, 2 (each saved; the next
starts from it)  5. the try-on phase on the world's VITON-HD split, from the trained model (its own
model: the inpainting UNet needs a person to draw on)  6. gallery captions from images alone
7. trained models, evaluated  8. the catalog search index of the test images (OUT/index), for
`unifashion serve`  9. report (Markdown + HTML) with pictures. The trained model is left in OUT/model,
the try-on model in OUT/tryon_model.
"""
from __future__ import annotations

import html
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.samples import ImageRef
from unifashion.data.synthetic.products import CatalogConfig
from unifashion.data.synthetic.world import WorldConfig, write_world
from unifashion.evaluation import sheets
from unifashion.evaluation.evaluate import (EvalCache, EvalConfig, EvalDetails, evaluate_world, evaluation_meta,
                                            first_view_per_product)
from unifashion.evaluation.model_scores import (image_embeddings, max_over_queries, said_captions, text_embeddings,
                                               triplet_query_text)
from unifashion.evaluation.report import write_eval_report
from unifashion.search.index_build import build_index, items_from_data
from unifashion.data.sources import find_sources
from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery
from unifashion.models.captioner import build_caption_tokenizer
from unifashion.models.unified import UniFashion, load_config
from unifashion.training import phases
from unifashion.training.run_phase import run_phase
from unifashion.training.trainer import TrainConfig

ProgressFn = Callable[[str, int, int], None]
CIR_CATEGORIES = ("dress", "shirt", "toptee")  # Fashion-IQ's three


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes and phase settings that fit the 30-minute budget on 2 CPU cores (chosen by measurement:
    README, "Quickstart"). The phases are the same classes `unifashion train` runs, with budget settings."""
    model_config: str = "quickstart"  # shipped config name or file
    # 4000 products: ~960 train, ~2900 held out (val), ~160 test. Every protocol needs many held-out
    # products: sample-100 needs 100 same-subcategory negatives per query, a Fashion-IQ gallery >= 300
    products: int = 4000
    val_fraction: float = 0.7
    test_fraction: float = 0.04
    image_size: int = 128  # pixels of the world's images
    seed: int = 0
    batch_size: int = 16  # the Q-Former phases (1a, 2) and the VAE
    generator_batch_size: int = 32  # the phases whose frozen inputs are cached (1b, q2I-only, try-on)
    vae_steps: int = 900
    phase1a_steps: int = 200
    phase1b_steps: int = 500
    diffusion_steps: int = 400  # extra q2I-only steps after phase 1b (0 skips them)
    phase2_steps: int = 60
    tryon_steps: int = 300  # 0 skips the try-on phase and its evaluation
    caption_vocab: int = 1024  # word pieces of the from-scratch captioner's tokenizer
    vae: phases.AutoencoderPretraining = phases.AutoencoderPretraining()
    # ITM stays at chance (0.636) for 100 steps of this budget while costing ~70% of each step: off here
    phase1a: phases.QFormerPretraining = phases.QFormerPretraining(lr=2e-4, itm_weight=0.0)
    # the quickstart's captioner and UNet are small and trained from scratch: from-scratch learning rates
    phase1b: phases.GenerativeAdaptation = phases.GenerativeAdaptation(llm_lr=1e-3, adapter_lr=1e-3, diffusion_lr=1e-3)
    # the generator gets extra steps of its own (a q2I step on cached latents and queries is cheap)
    diffusion: phases.GenerativeAdaptation = phases.GenerativeAdaptation(name="phase1b-diffusion", train_llm=False,
                                                                         adapter_lr=1e-3, diffusion_lr=1e-3)
    phase2: phases.ComposedFinetuning = phases.ComposedFinetuning(lr=1e-4, cir_itm_weight=0.0)
    tryon: phases.GarmentGeneration = phases.GarmentGeneration(diffusion_lr=1e-3, adapter_lr=1e-3)
    evaluation: EvalConfig = field(default_factory=lambda: EvalConfig(
        categories=CIR_CATEGORIES, cir_queries=400, cmr_products=2000, caption_items=200, generation_items=500,
        generation_steps=20, tryon_items=64, probe_items=1000))


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
    catalog_config = CatalogConfig(products=config.products, seed=config.seed, val_fraction=config.val_fraction,
                                   test_fraction=config.test_fraction)
    timed("synth", lambda: write_world(world, WorldConfig(catalog_config, image_size=config.image_size),
                                       overwrite=True, progress=progress))
    # 2. the from-scratch captioner says what the training captions say: its tokenizer is learnt from them
    train_pairs = catalog.load(world / "catalog", split="train")
    texts = sorted({t for p in train_pairs for t in (p.caption, p.title, p.extra.get("detailed", "")) if t})
    tokenizer_dir = build_caption_tokenizer(texts, out / "caption_tokenizer", config.caption_vocab)
    model_config = load_config(config.model_config, {"captioner": {"path": str(tokenizer_dir.resolve())}})
    # 3. the untrained model, evaluated
    cache = out / "feature_cache"
    eval_cache = EvalCache(out / "eval_cache")  # real images' Inception features and the probes: once per world
    torch.manual_seed(config.seed)  # the same init as the vae phase's (run_phase seeds it alike)
    untrained = UniFashion.from_config(model_config)
    untrained.use_feature_cache(cache)
    before = timed("evaluate untrained", lambda: evaluate_world(untrained, world, config.evaluation, progress=progress,
                                                                cache=eval_cache))
    untrained = None  # free it before training
    # 4. the phases, each from the previous one's saved model
    previous = None
    plan = [("vae", config.vae, config.vae_steps, config.batch_size),
            ("phase1a", config.phase1a, config.phase1a_steps, config.batch_size),
            ("phase1b", config.phase1b, config.phase1b_steps, config.generator_batch_size),
            ("phase1b-diffusion", config.diffusion, config.diffusion_steps, config.generator_batch_size),
            ("phase2", config.phase2, config.phase2_steps, config.batch_size)]

    def train_phase(name: str, phase, steps: int, batch: int, init):
        run_dir = out / "runs" / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train_config = TrainConfig(steps=steps, batch_size=batch, seed=config.seed,
                                   checkpoint_every=max(steps, 1), log_every=max(1, steps // 20))
        timed(f"train {name}", lambda: run_phase(phase, world, run_dir, train_config, init=init,
                                                 model_config=model_config, cache=cache, progress=progress is not None))
        return run_dir / "model"

    for name, phase, steps, batch in plan:
        if steps:
            previous = train_phase(name, phase, steps, batch, previous)
    trained = UniFashion.from_pretrained(previous)
    final = out / "model"
    if final.exists():
        shutil.rmtree(final)
    trained.save_pretrained(final)
    trained.use_feature_cache(cache)
    # 5. try-on: the inpainting generator, trained from the final model, saved beside it
    tryon_model = None
    if config.tryon_steps:
        trained_tryon = train_phase("tryon", config.tryon, config.tryon_steps, config.generator_batch_size, final)
        tryon_model = out / "tryon_model"
        if tryon_model.exists():
            shutil.rmtree(tryon_model)
        shutil.copytree(trained_tryon, tryon_model)
    # 6. gallery captions of the validation galleries, from the images alone
    gallery = timed("gallery captions", lambda: caption_images(
        trained, fashioniq_gallery(world / "fashioniq", "val", config.evaluation.categories), style="detailed",
        batch_size=32, max_new_tokens=config.evaluation.max_new_tokens))
    (out / "gallery_captions.val.json").write_text(json.dumps(gallery, indent=1, sort_keys=True) + "\n")
    # 7. the trained models, evaluated
    details = EvalDetails()
    after = timed("evaluate trained", lambda: evaluate_world(trained, world, config.evaluation, gallery_captions=gallery,
                                                             progress=progress, details=details, cache=eval_cache))
    if tryon_model is not None:
        tryon = UniFashion.from_pretrained(tryon_model)
        tryon.use_feature_cache(cache)
        from dataclasses import replace

        after.update(timed("evaluate try-on", lambda: evaluate_world(
            tryon, world, replace(config.evaluation, tasks=("tryon",)), progress=progress, details=details,
            cache=eval_cache)))
        tryon = None
    # 8. the catalog search index that `unifashion serve` answers from: the catalog's test images,
    # which training never saw
    unseen = items_from_data(world / "catalog", ("test",))
    index = timed("index catalog", lambda: build_index(
        trained, unseen, out / "index", model_source=str(final.resolve()), overwrite=True,
        max_new_tokens=config.evaluation.max_new_tokens, progress=progress))
    # 9. the report
    summary = {"config": asdict(config), "timings": timings, "before": before, "after": after,
               "model": str(final), "tryon_model": str(tryon_model) if tryon_model else None,
               "index": {"path": str(out / "index"), "items": len(index)},
               "targets": target_rows(with_derived(before), with_derived(after))}
    timed("report", lambda: write_report(out, trained, world, summary, details, gallery))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _write_report_text(out, summary)
    # the evaluation report of the trained model (the one `unifashion eval --report` writes)
    meta = evaluation_meta(str(final), find_sources([world]), config.evaluation, timings["evaluate trained"])
    write_eval_report(out / "eval_report", after, meta, details)
    return summary


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


def write_report(out: Path, model, world: Path, summary: dict, details: EvalDetails,
                 gallery_captions: dict[str, str]) -> None:
    """The report's pictures (report_img/) and the examples' ranks in `summary["examples"]`."""
    img = out / "report_img"
    img.mkdir(exist_ok=True)
    loss_curves(out, img / "losses.png")
    searches = retrieval_rows(model, world)
    sheets.retrieval_sheet(searches).save(img / "retrieval.png")
    composed = composed_rows(model, world, gallery_captions, CIR_CATEGORIES[0])
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


def _write_report_text(out: Path, summary: dict) -> None:
    before, after, targets = with_derived(summary["before"]), with_derived(summary["after"]), summary["targets"]
    keys = sorted(set(before) | set(after))
    fmt = sheets.format_value
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
        md += [f"## {SECTIONS[name]}", "", f"![{name}](report_img/{name}.png)", ""]
    ex = summary.get("examples", {})
    if ex:
        md += [f"Right product's rank in the search examples: {ex['retrieval_ranks']}; target's rank in the "
               f"composed examples: {ex['composed_ranks']} (of {ex['composed_gallery']}).", ""]
    md += ["## Every metric", "", "| metric | untrained | trained |", "|---|---|---|"]
    md += [f"| {k} | {fmt(before.get(k))} | {fmt(after.get(k))} |" for k in keys]
    (out / "report.md").write_text("\n".join(md) + "\n")
    esc = html.escape
    table = "".join(f"<tr><td>{esc(k)}</td><td>{fmt(before.get(k))}</td><td>{fmt(after.get(k))}</td></tr>" for k in keys)
    figures = "".join(f"<h2>{esc(SECTIONS[n])}</h2><img src='report_img/{n}.png'>" for n in pictures)
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>UniFashion quickstart</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}td,th{padding:2px 8px}"
        "img{max-width:100%}</style>"
        f"<h1>UniFashion quickstart report</h1><p>Wall time: {summary['seconds']:.0f} s ({esc(timings)})</p>"
        f"<p>Sizes: {esc(size_text)}. Trained model: <code>{esc(summary['model'])}</code>.</p>"
        f"<h2>Targets</h2>{sheets.targets_table_html(targets)}{figures}"
        f"<h2>Every metric</h2><table><tr><th>metric</th><th>untrained</th><th>trained</th></tr>{table}</table>")
