"""Evaluate a model on each task's validation data, with the fixed JSON keys.

Keys: `cmr.sample100.{i2t,t2i}.r{1,5,10}`, `cmr.sample100.mean`, `cmr.full.*` (same shape),
`cir.<category>.r10|r50`, `cir.avg.r10|r50|score`, `cir.variants.<img|cap|both>.avg.score`,
`cap.bleu4|meteor|rouge_l|cider`, `gen.fid`, `gen.kid_mean`, `gen.kid_std`,
`gen.model_itc_score` (the model's own image-text score, best query's cosine with the text embedding,
between each generated image and the text it was drawn from; not CLIP-S, no CLIP model is involved) and
`gen.model_itc_score_real` (the same on the real images), and on data with colour attributes (the
synthetic world) `gen.colour_match` and `gen.colour_match_real`: the same colour test on the real images
at the generated size, the metric's ceiling (patterns and shading move the dominant colour off the
named one). Try-on: `tryon.<paired|unpaired>.fid|kid_mean|kid_std` on VITON-HD's test pairs; design
(the garment's caption alone): `design.<paired|unpaired>.*` alike.
Stages: 1. cross-modal retrieval  2. composed retrieval (+ caption variants when gallery captions
are given)  3. captions  4. generation  5. try-on.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unifashion.data.formats import CAPTION_STYLE
from unifashion.data.synthetic.taxonomy import COLOURS
from unifashion.errors import ConfigError
from unifashion.evaluation.model_scores import cir_scores, cmr_scores, paired_scores
from unifashion.evaluation.protocols import cmr_full, cmr_sample100, combine_scores, fashioniq_recall, fashioniq_summary
from unifashion.evaluation.sources import (EVAL_SPLITS, EvalSources, fashioniq_categories, find_sources,
                                           tryon_samples)

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalConfig:
    split: str | None = None  # None: each format's evaluation split (sources.EVAL_SPLITS)
    tasks: tuple[str, ...] = ("cmr", "cir", "cap", "gen")
    categories: tuple[str, ...] | None = None  # Fashion-IQ categories (None: every one with targets)
    cmr_queries: int = 1000  # sample-100 protocol: queries per seed
    cmr_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    caption_items: int = 100  # products captioned (first view each)
    caption_style: str | None = None  # None: the data's own style (FashionGen professional, Fashion200K short)
    max_new_tokens: int = 48
    generation_items: int = 32  # products generated from their descriptions
    generation_steps: int = 25
    sampler: str = "dpm++"
    tryon_items: int = 32  # VITON-HD test persons generated per setting (paired, unpaired)
    seed: int = 0  # generation noise
    batch_size: int = 32


@dataclass
class EvalDetails:
    """What a report draws beyond the metrics, filled by `evaluate` when it is given one."""
    curves: dict[str, dict[int, float]] = field(default_factory=dict)  # "cmr.full.i2t|t2i", "cir.<category>": {K: R@K}
    captions: list[dict] = field(default_factory=list)  # {"image": ImageRef, "prediction", "reference"}
    generations: list[dict] = field(default_factory=list)  # {"real": ImageRef, "generated": PIL image, "text"}
    examples: int = 8  # captions and generations kept


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


class _Realism:
    """FID and KID against real images, with one Inception network for the whole evaluation."""

    def __init__(self):
        self._inception = None

    def __call__(self, prefix: str, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        from unifashion.evaluation.generation import InceptionFeatures, frechet_distance, kernel_inception_distance

        if self._inception is None:
            self._inception = InceptionFeatures()
        f_real, f_fake = self._inception(real), self._inception(fake)
        kid_mean, kid_std = kernel_inception_distance(f_real, f_fake, subsets=10, subset_size=min(len(real), 100))
        return {f"{prefix}.fid": frechet_distance(f_real, f_fake), f"{prefix}.kid_mean": float(kid_mean),
                f"{prefix}.kid_std": float(kid_std)}


def _uint8(images, size=None) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB") if size is None else im.convert("RGB").resize(size))
                     for im in images])  # (N, S, S, 3)


def evaluate(model, sources: EvalSources, config: EvalConfig = EvalConfig(), *,
             gallery_captions: dict[str, str] | None = None, progress: ProgressFn | None = None,
             details: EvalDetails | None = None) -> dict:
    """Every task in config.tasks on the sources' evaluation splits; DataError first when the sources
    cannot serve a task. `details`, when given, receives recall@K curves and examples for a report."""
    sources.check_tasks(config.tasks)
    for task in {"tryon", "design"} & set(config.tasks):
        if not model.generator.config.inpainting:
            raise ConfigError(f"task {task} needs a model whose generator is the inpainting variant "
                              "(train one with `unifashion train --phase tryon`)")
    metrics: dict[str, float] = {}
    pairs = sources.load_pairs(config.split) if {"cmr", "cap", "gen"} & set(config.tasks) else []
    realism = _Realism()

    # 1. cross-modal retrieval over every validation image and its text
    if "cmr" in config.tasks:
        sim = cmr_scores(model, pairs, config.batch_size, progress)
        ids = np.array([p.product_id for p in pairs])
        subs = np.array([p.subcategory for p in pairs])
        metrics.update(_flatten("cmr.sample100", cmr_sample100(sim, ids, subs, n_queries=config.cmr_queries,
                                                               seeds=config.cmr_seeds)))
        metrics.update(_flatten("cmr.full", cmr_full(sim, ids)))
        if details is not None:
            curve = cmr_full(sim, ids, ks=range(1, 51))
            details.curves.update({"cmr.full.i2t": curve["i2t"], "cmr.full.t2i": curve["t2i"]})

    # 2. composed retrieval, per Fashion-IQ category, image / caption / both
    if "cir" in config.tasks:
        root, split = sources.fashioniq, config.split or EVAL_SPLITS["fashioniq"]
        variants: dict[str, dict] = {"img": {}, "cap": {}, "both": {}}
        for category in fashioniq_categories(root, split, config.categories):
            s = cir_scores(model, root, split, category, gallery_captions, config.batch_size, progress)
            variants["img"][category] = fashioniq_recall(s["image"], s["target_index"])
            if details is not None:  # the curve of the score that ranks (both, when there are captions)
                main_scores = s["image"] if s["caption"] is None else combine_scores(s["image"], s["caption"])
                details.curves[f"cir.{category}"] = fashioniq_recall(main_scores, s["target_index"], ks=range(1, 101))
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
    # 3. captions of one image per product, against its description in the data's style
    if "cap" in config.tasks:
        from unifashion.evaluation.metrics import caption_scores

        style = config.caption_style or CAPTION_STYLE[sources.pairs_format]
        items = products[: config.caption_items]
        predictions: dict[str, str] = {}
        for start in range(0, len(items), config.batch_size):
            chunk = items[start:start + config.batch_size]
            texts = model.caption([p.image.load() for p in chunk], style, max_new_tokens=config.max_new_tokens)
            predictions.update({p.item_id: t if t.strip() else "-" for p, t in zip(chunk, texts)})
            if progress:
                progress("captioning", start + len(chunk), len(items))
        scores = caption_scores(predictions, {p.item_id: [p.caption] for p in items})
        if details is not None:
            details.captions = [{"image": p.image, "prediction": predictions[p.item_id], "reference": p.caption}
                                for p in items[: details.examples]]
        metrics.update({f"cap.{k}": float(v) for k, v in scores.items()})

    # 4. generation from the descriptions: FID/KID against the real images, text and colour adherence
    if "gen" in config.tasks:
        from unifashion.evaluation.generation import dominant_colour_match

        items = products[: config.generation_items]
        texts = [p.extra.get("detailed", p.caption) for p in items]  # the world's long description when it has one
        generated = []
        for start in range(0, len(items), config.batch_size):
            generated += model.generate(texts=texts[start:start + config.batch_size], steps=config.generation_steps,
                                        sampler=config.sampler, seed=config.seed + start)
            if progress:
                progress("generating", min(start + config.batch_size, len(items)), len(items))
        fake = _uint8(generated)
        real_images = [p.image.load() for p in items]
        real = _uint8(real_images, generated[0].size)
        metrics.update(realism("gen", real, fake))
        metrics["gen.model_itc_score"] = float(paired_scores(model, generated, texts).mean())
        metrics["gen.model_itc_score_real"] = float(paired_scores(model, real_images, texts).mean())
        if details is not None:
            details.generations = [{"real": p.image, "generated": g, "text": t}
                                   for p, g, t in list(zip(items, generated, texts))[: details.examples]]
        if all("colour" in p.extra.get("attributes", {}) for p in items):
            requested = np.array([COLOURS[p.extra["attributes"]["colour"]] for p in items])
            metrics["gen.colour_match"] = 100.0 * dominant_colour_match(fake, requested, COLOURS)
            metrics["gen.colour_match_real"] = 100.0 * dominant_colour_match(real, requested, COLOURS)

    # 5. try-on (the garment image + its caption) and design (the caption alone, MGD's setting) on
    # VITON-HD test persons, paired (their own garment) and unpaired (another one)
    for task, garment_image in (("tryon", True), ("design", False)):
        if task not in config.tasks:
            continue
        split = config.split or EVAL_SPLITS["vitonhd"]
        for setting, paired in (("paired", True), ("unpaired", False)):
            samples = tryon_samples(sources.vitonhd, split, paired)[: config.tryon_items]
            generated = []
            for start in range(0, len(samples), config.batch_size):
                generated += model.generate_tryon(samples[start:start + config.batch_size],
                                                  garment_image=garment_image, steps=config.generation_steps,
                                                  sampler=config.sampler, seed=config.seed + start)
                if progress:
                    progress(f"{task} {setting}", min(start + config.batch_size, len(samples)), len(samples))
            real = _uint8([s.person.load() for s in samples], generated[0].size)
            metrics.update(realism(f"{task}.{setting}", real, _uint8(generated)))
    return metrics


def evaluate_world(model, world: Path, config: EvalConfig = EvalConfig(), *,
                   gallery_captions: dict[str, str] | None = None, progress: ProgressFn | None = None,
                   details: EvalDetails | None = None) -> dict:
    """`evaluate` on a synthetic world (its catalog, Fashion-IQ and VITON-HD folders)."""
    return evaluate(model, find_sources([Path(world)]), config, gallery_captions=gallery_captions, progress=progress,
                    details=details)


def evaluation_meta(model: str, sources: EvalSources, config: EvalConfig, seconds: float) -> dict:
    """The `meta` entry of an evaluation's JSON: what was evaluated on what, when, with which versions."""
    import platform
    from dataclasses import asdict
    from datetime import datetime, timezone
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("unifashion", "torch", "transformers", "diffusers", "peft", "pycocoevalcap"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"model": model, "data": sources.describe(), "seed": config.seed, "tasks": list(config.tasks),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 1),
            "config": asdict(config), "versions": versions}
