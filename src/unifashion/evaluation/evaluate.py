"""Evaluate a model on a synthetic world's validation split: all four tasks, with the fixed JSON keys.

Keys: `cmr.sample100.{i2t,t2i}.r{1,5,10}`, `cmr.sample100.mean`, `cmr.full.*` (same shape),
`cir.<category>.r10|r50`, `cir.avg.r10|r50|score`, `cir.variants.<img|cap|both>.avg.score`,
`cap.bleu4|meteor|rouge_l|cider`, `gen.fid`, `gen.kid_mean`, `gen.kid_std`, `gen.colour_match`, and
`gen.colour_match_real`: the same colour test on the real images at the generated size, the metric's
ceiling (patterns and shading move the dominant colour off the named one).
Stages: 1. cross-modal retrieval  2. composed retrieval (+ caption variants when gallery captions
are given)  3. captions  4. generation.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unifashion.data.formats import catalog, fashioniq
from unifashion.data.synthetic.taxonomy import COLOURS
from unifashion.evaluation.model_scores import cir_scores, cmr_scores
from unifashion.evaluation.protocols import cmr_full, cmr_sample100, combine_scores, fashioniq_recall, fashioniq_summary

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalConfig:
    split: str = "val"  # the world's validation split
    tasks: tuple[str, ...] = ("cmr", "cir", "cap", "gen")
    cmr_queries: int = 1000  # sample-100 protocol: queries per seed
    cmr_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    caption_items: int = 100  # products captioned (first view each)
    caption_style: str = "professional"  # compared with the FashionGen-style descriptions
    max_new_tokens: int = 48
    generation_items: int = 32  # products generated from their detailed descriptions
    generation_steps: int = 25
    sampler: str = "dpm++"
    batch_size: int = 32


def _flatten(prefix: str, result: dict) -> dict[str, float]:
    out = {}
    for direction in ("i2t", "t2i"):
        for k, v in result[direction].items():
            out[f"{prefix}.{direction}.r{k}"] = float(v)
    out[f"{prefix}.mean"] = float(result["mean"])
    return out


def first_view_per_product(pairs: list) -> list:
    """The first image of each product, in order."""
    seen, out = set(), []
    for p in pairs:
        if p.product_id not in seen:
            seen.add(p.product_id)
            out.append(p)
    return out


def evaluate_world(model, world: Path, config: EvalConfig = EvalConfig(), *,
                   gallery_captions: dict[str, str] | None = None, progress: ProgressFn | None = None) -> dict:
    world = Path(world)
    pairs = catalog.load(world / "catalog", split=config.split)
    metrics: dict[str, float] = {}

    # 1. cross-modal retrieval over every validation image and its text
    if "cmr" in config.tasks:
        sim = cmr_scores(model, pairs, config.batch_size, progress)
        ids = np.array([p.product_id for p in pairs])
        subs = np.array([p.subcategory for p in pairs])
        metrics.update(_flatten("cmr.sample100", cmr_sample100(sim, ids, subs, n_queries=config.cmr_queries,
                                                               seeds=config.cmr_seeds)))
        metrics.update(_flatten("cmr.full", cmr_full(sim, ids)))

    # 2. composed retrieval, per Fashion-IQ category, image / caption / both
    if "cir" in config.tasks:
        root = world / "fashioniq"
        variants: dict[str, dict] = {"img": {}, "cap": {}, "both": {}}
        for category in fashioniq.categories(root):
            if not any(t.target_id for t in fashioniq.load(root, config.split, category)):
                continue
            s = cir_scores(model, root, config.split, category, gallery_captions, config.batch_size, progress)
            variants["img"][category] = fashioniq_recall(s["image"], s["target_index"])
            if s["caption"] is not None:
                variants["cap"][category] = fashioniq_recall(s["caption"], s["target_index"])
                variants["both"][category] = fashioniq_recall(combine_scores(s["image"], s["caption"]),
                                                              s["target_index"])
        main = "both" if variants["both"] else "img"
        metrics.update({f"cir.{k}": v for k, v in fashioniq_summary(variants[main]).items()})
        for name, per in variants.items():
            if per:
                metrics[f"cir.variants.{name}.avg.score"] = fashioniq_summary(per)["avg.score"]

    products = first_view_per_product(pairs)
    # 3. captions of one image per product, against its professional description
    if "cap" in config.tasks:
        from unifashion.evaluation.metrics import caption_scores

        items = products[: config.caption_items]
        predictions: dict[str, str] = {}
        for start in range(0, len(items), config.batch_size):
            chunk = items[start:start + config.batch_size]
            texts = model.caption([p.image.load() for p in chunk], config.caption_style,
                                  max_new_tokens=config.max_new_tokens)
            predictions.update({p.item_id: t if t.strip() else "-" for p, t in zip(chunk, texts)})
            if progress:
                progress("captioning", start + len(chunk), len(items))
        scores = caption_scores(predictions, {p.item_id: [p.caption] for p in items})
        metrics.update({f"cap.{k}": float(v) for k, v in scores.items()})

    # 4. generation from the detailed descriptions: FID/KID against the real images, colour adherence
    if "gen" in config.tasks:
        from unifashion.evaluation.generation import (InceptionFeatures, dominant_colour_match, frechet_distance,
                                                      kernel_inception_distance)

        items = products[: config.generation_items]
        generated = []
        for start in range(0, len(items), config.batch_size):
            chunk = items[start:start + config.batch_size]
            generated += model.generate(texts=[p.extra["detailed"] for p in chunk], steps=config.generation_steps,
                                        sampler=config.sampler, seed=start)
            if progress:
                progress("generating", start + len(chunk), len(items))
        size = generated[0].size
        fake = np.stack([np.asarray(im.convert("RGB")) for im in generated])  # (N, S, S, 3)
        real = np.stack([np.asarray(p.image.load().convert("RGB").resize(size)) for p in items])
        inception = InceptionFeatures()
        f_real, f_fake = inception(real), inception(fake)
        metrics["gen.fid"] = frechet_distance(f_real, f_fake)
        kid_mean, kid_std = kernel_inception_distance(f_real, f_fake, subsets=10, subset_size=min(len(items), 100))
        metrics["gen.kid_mean"], metrics["gen.kid_std"] = float(kid_mean), float(kid_std)
        requested = np.array([COLOURS[p.extra["attributes"]["colour"]] for p in items])
        metrics["gen.colour_match"] = 100.0 * dominant_colour_match(fake, requested, COLOURS)
        metrics["gen.colour_match_real"] = 100.0 * dominant_colour_match(real, requested, COLOURS)
    return metrics
