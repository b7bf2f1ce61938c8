"""The quickstart: synthetic world -> every training phase -> evaluation before and after -> a report.

Stages: 1. synthetic world (training products and ~3x as many held-out ones, so that every protocol has
the data it needs)  2. the captioner's tokenizer from the training captions  3. untrained model,
evaluated  4. phases vae, 1a, 1b, extra q2I-only steps for the generator, 2 (each saved; the next
starts from it)  5. the try-on phase on the world's VITON-HD split, from the trained model (its own
model: the inpainting UNet needs a person to draw on)  6. gallery captions from images alone
7. trained models, evaluated  8. the catalog search index of the test images (OUT/index), for
`unifashion serve`  9. the report, Markdown + HTML with pictures (quickstart_report.py). The trained model is left in OUT/model,
the try-on model in OUT/tryon_model.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from unifashion.data.formats import catalog
from unifashion.data.synthetic.products import CatalogConfig
from unifashion.data.synthetic.world import WorldConfig, write_world
from unifashion.evaluation.evaluate import EvalCache, EvalConfig, EvalDetails, evaluate_world, evaluation_meta
from unifashion.evaluation.report import write_eval_report
from unifashion.search.index_build import build_index, items_from_data
from unifashion.data.sources import find_sources
from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery
from unifashion.models.captioner import build_caption_tokenizer
from unifashion.models.model_config import load_config
from unifashion.models.unified import UniFashion
from unifashion.recipes import phase_settings
from unifashion.recipes.budgets import QuickstartBudget
from unifashion.recipes.quickstart_report import target_rows, with_derived, write_page, write_pictures
from unifashion.training import phases
from unifashion.training.run_phase import run_phase
from unifashion.training.trainer import TrainConfig

ProgressFn = Callable[[str, int, int], None]
CIR_CATEGORIES = ("dress", "shirt", "toptee")  # Fashion-IQ's three


@dataclass(frozen=True)
class QuickstartConfig(QuickstartBudget):
    """The quickstart's budget (sizes and steps: budgets.QuickstartBudget), its model and seed, and each
    phase's settings. The phases are the same classes `unifashion train` runs, with budget settings."""
    model_config: str = "quickstart"  # shipped config name or file
    seed: int = 0
    vae: phases.AutoencoderPretraining = phases.AutoencoderPretraining()
    phase1a: phases.QFormerPretraining = phase_settings.PHASE1A
    phase1b: phases.GenerativeAdaptation = phase_settings.PHASE1B
    # the generator gets extra steps of its own (a q2I step on cached latents and queries is cheap)
    diffusion: phases.GenerativeAdaptation = phases.GenerativeAdaptation(name="phase1b-diffusion", train_llm=False,
                                                                         adapter_lr=1e-3, diffusion_lr=1e-3)
    phase2: phases.ComposedFinetuning = phase_settings.PHASE2
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
    timed("report", lambda: write_pictures(out, trained, world, summary, details, gallery, CIR_CATEGORIES[0]))
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_page(out, summary)
    # the evaluation report of the trained model (the one `unifashion eval --report` writes)
    meta = evaluation_meta(str(final), find_sources([world]), config.evaluation, timings["evaluate trained"])
    write_eval_report(out / "eval_report", after, meta, details)
    return summary
