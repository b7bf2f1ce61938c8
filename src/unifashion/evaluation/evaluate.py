"""Evaluate a model on each task's validation data, with the fixed JSON keys.

Keys: `cmr.sample100.{i2t,t2i}.r{1,5,10}`, `cmr.sample100.mean`, `cmr.sample100.short_draws` (query draws
with fewer than 100 same-subcategory negatives: 0 on data large enough for the protocol), `cmr.full.*`
(same shape), `cmr.items`; `cir.<category>.r10|r50`, `cir.avg.r10|r50|score`, `cir.gallery_min` (the
smallest category gallery), `cir.queries`, `cir.variants.<img|cap|both>.avg.score`, and the one-input
baselines `cir.baseline.<text_only|image_only>.avg.score` (the query text alone, the reference image alone);
`cap.bleu4|meteor|rouge_l|cider`, and on data that ships a vocabulary (the synthetic world's
`catalog/vocabulary.json`) `cap.attr.<category|colour|pattern>` (share of captions naming the right
value; evaluation/attributes.py has the rule), `cap.loops` (share with a repeated word n-gram) and the
same shares of the reference texts (`cap.attr_reference.*`, the rule's ceiling);
`gen.fid`, `gen.kid_mean`, `gen.kid_std` between `gen.samples` generated images (`gen.image_size`
pixels) and as many real ones, `gen.fid_real` / `gen.kid_real` (two disjoint real sets of that size:
the floor), `gen.model_itc_score` (the model's own image-text score of each generated image with its
text; not CLIP-S) and `gen.model_itc_score_real`; on data with attributes `gen.colour_match` /
`gen.colour_match_real` (dominant colour) and `gen.probe.<category|colour|pattern>` (linear probes on
frozen image-encoder features, fit on the training split's real renders, read on the generated images)
beside `gen.probe.<...>_real` (the same probes on held-out real renders: the ceiling). Try-on:
`tryon.<paired|unpaired>.fid|kid_mean|kid_std` on VITON-HD's test pairs, `tryon.psnr_outside` (paired:
the result against the person outside the inpainting mask) beside `tryon.psnr_outside_vae` (the person
through the generator's VAE and back: the ceiling of a latent try-on) and `tryon.probe.colour` /
`tryon.probe.colour_real` (the probe on the garment region of the result / of the real person, against
the colour the garment's caption names); design (the garment's caption alone): `design.<paired|unpaired>.*`.
Stages: 1. cross-modal retrieval  2. composed retrieval (+ caption variants when gallery captions
are given)  3. captions  4. generation  5. try-on.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unifashion.data.formats import CAPTION_STYLE, catalog
from unifashion.data.sources import EVAL_SPLITS, EvalSources, fashioniq_categories, find_sources, tryon_samples
from unifashion.data.vocabulary import COLOURS
from unifashion.errors import ConfigError, DataError
from unifashion.evaluation.model_scores import cir_scores, cmr_scores, paired_scores, pooled_image_features
from unifashion.evaluation.protocols import cmr_full, cmr_sample100, combine_scores, fashioniq_recall, fashioniq_summary
from unifashion.models.captioner import said

ProgressFn = Callable[[str, int, int], None]
PROBED = ("category", "colour", "pattern")  # attributes the generation probe reads


@dataclass(frozen=True)
class EvalConfig:
    split: str | None = None  # None: each format's evaluation split (sources.EVAL_SPLITS)
    tasks: tuple[str, ...] = ("cmr", "cir", "cap", "gen")
    categories: tuple[str, ...] | None = None  # Fashion-IQ categories (None: every one with targets)
    cir_queries: int | None = None  # per category: a seeded random subset of the triplets (None: all)
    cmr_queries: int = 1000  # sample-100 protocol: queries per seed
    cmr_products: int | None = None  # the first N products of the split, every view (None: all)
    cmr_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    caption_items: int = 100  # products captioned (first view each)
    caption_style: str | None = None  # None: the data's own style (FashionGen professional, Fashion200K short)
    max_new_tokens: int = 48
    # products generated from their descriptions; FID/KID compare as many real images, and the floor
    # compares two disjoint real sets of that size (FID is only comparable at equal sample counts)
    generation_items: int = 500
    generation_steps: int = 25
    sampler: str = "dpm++"
    guidance_scale: float = 3.0
    tryon_items: int = 32  # VITON-HD test persons generated per setting (paired, unpaired)
    probe_items: int = 1500  # training-split images the attribute probe is fit on
    seed: int = 0  # generation noise
    batch_size: int = 32


@dataclass
class EvalDetails:
    """What a report draws beyond the metrics, filled by `evaluate` when it is given one."""
    curves: dict[str, dict[int, float]] = field(default_factory=dict)  # "cmr.full.i2t|t2i", "cir.<category>": {K: R@K}
    # {"image": ImageRef, "prediction", "reference", "flags": {attribute: right?} (with a vocabulary)}
    captions: list[dict] = field(default_factory=list)
    # {"real": ImageRef, "generated": PIL image, "text", "probe": {attribute: (read, requested)}}
    generations: list[dict] = field(default_factory=list)
    # {"sample": TryOnSample, "result": PIL image, "psnr_outside": dB, "colour": (read, requested)}
    tryons: list[dict] = field(default_factory=list)
    examples: int = 8  # captions, generations and try-ons kept


class EvalCache:
    """What does not depend on the model under evaluation, computed once: the Inception network and
    real images' Inception features, and the attribute probes (they read the frozen image encoder,
    which every model of one config shares). With a `directory`, real features persist across runs
    (numpy files, read with allow_pickle=False), keyed by the images and the size they are read at."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._inception = None
        self._features: dict[str, np.ndarray] = {}
        self._probes: dict[tuple, object] = {}

    def inception(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 2048) pool3 features."""
        from unifashion.evaluation.generation_metrics import InceptionFeatures

        if self._inception is None:
            self._inception = InceptionFeatures()
        return self._inception(images)

    def real_features(self, refs: list, size: tuple[int, int]) -> np.ndarray:
        """Inception features of real images read at `size` (what the generated images are)."""
        h = hashlib.sha256(f"{size}|".encode())
        for r in refs:
            h.update(f"{r}|".encode())
        key = h.hexdigest()[:24]
        if key in self._features:
            return self._features[key]
        path = self.directory / f"inception-{key}.npy" if self.directory is not None else None
        if path is not None and path.is_file():
            feats = np.load(path, allow_pickle=False)
        else:
            feats = self.inception(_uint8([r.load() for r in refs], size))
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, feats, allow_pickle=False)
                tmp.replace(path)
        self._features[key] = feats
        return feats

    def probe(self, model, train_pairs: list, size: int, n: int, batch_size: int) -> "ImageProbes":
        """Probes for PROBED attributes, fit on up to `n` training images read at `size` px."""
        key = (model.image_encoder.identity, size, n, len(train_pairs))
        if key not in self._probes:
            rng = np.random.default_rng(0)
            chosen = [train_pairs[i] for i in sorted(rng.permutation(len(train_pairs))[:n])]
            images = [_at_size(p.image.load(), size) for p in chosen]
            self._probes[key] = ImageProbes.fit(model, images, {a: [_attribute(p, a) for p in chosen] for a in PROBED},
                                                batch_size)
        return self._probes[key]


@dataclass(frozen=True)
class ImageProbes:
    """Linear probes of what an image shows: category and pattern from the frozen image encoder's
    pooled tokens, colour from the foreground's colour histogram. Measured on held-out real renders at
    64 px (1000 training images): a linear colour probe on the encoder's layer-normed tokens reads 29%
    of them, on the histogram 60%; category 92% and pattern 89% on the tokens."""
    shape: object  # AttributeProbe for category and pattern, on pooled tokens
    colour: object  # AttributeProbe for colour, on foreground histograms

    @staticmethod
    def fit(model, images: list, labels: dict, batch_size: int = 32) -> "ImageProbes":
        from unifashion.evaluation.attributes import AttributeProbe, foreground_histogram

        tokens = pooled_image_features(model, images, batch_size)
        shape = AttributeProbe.fit(tokens, {a: v for a, v in labels.items() if a != "colour"})
        colour = AttributeProbe.fit(foreground_histogram(_uint8(images)), {"colour": labels["colour"]}, l2=1e-2)
        return ImageProbes(shape, colour)

    def predict(self, model, images: list, batch_size: int = 32) -> dict[str, np.ndarray]:
        from unifashion.evaluation.attributes import foreground_histogram

        out = self.shape.predict(pooled_image_features(model, images, batch_size))
        out.update(self.colour.predict(foreground_histogram(_uint8(images))))
        return out

    def accuracy(self, model, images: list, labels: dict, batch_size: int = 32) -> dict[str, float]:
        read = self.predict(model, images, batch_size)
        return {a: float(np.mean(read[a] == np.asarray(v, dtype=str))) for a, v in labels.items()}


def _attribute(pair, name: str) -> str:
    return pair.category if name == "category" else pair.extra["attributes"][name]


def _at_size(image: Image.Image, size: int) -> Image.Image:
    """An image as a generated one of `size` px would be: RGB, square `size`."""
    return image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


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


def _realism(cache: EvalCache, prefix: str, f_real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    from unifashion.evaluation.generation_metrics import frechet_distance, kernel_inception_distance

    f_fake = cache.inception(fake)
    kid_mean, kid_std = kernel_inception_distance(f_real, f_fake, subsets=50, subset_size=min(len(f_real), len(f_fake), 100))
    return {f"{prefix}.fid": frechet_distance(f_real, f_fake), f"{prefix}.kid_mean": float(kid_mean),
            f"{prefix}.kid_std": float(kid_std)}


def _uint8(images, size=None) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB") if size is None else im.convert("RGB").resize(size))
                     for im in images])  # (N, S, S, 3)


def _has_attributes(pairs: list) -> bool:
    return bool(pairs) and all({"colour", "pattern"} <= set(p.extra.get("attributes", {})) for p in pairs)


def evaluate(model, sources: EvalSources, config: EvalConfig = EvalConfig(), *,
             gallery_captions: dict[str, str] | None = None, progress: ProgressFn | None = None,
             details: EvalDetails | None = None, cache: EvalCache | None = None) -> dict:
    """Every task in config.tasks on the sources' evaluation splits; DataError first when the sources
    cannot serve a task. `details`, when given, receives recall@K curves and examples for a report;
    `cache` keeps what does not depend on the model (pass one to several evaluations of one world)."""
    sources.check_tasks(config.tasks)
    for task in {"tryon", "design"} & set(config.tasks):
        if not model.generator.config.inpainting:
            raise ConfigError(f"task {task} needs a model whose generator is the inpainting variant "
                              "(train one with `unifashion train --phase tryon`)")
    cache = cache if cache is not None else EvalCache()
    metrics: dict[str, float] = {}
    pairs = sources.load_pairs(config.split) if {"cmr", "cap", "gen"} & set(config.tasks) else []
    vocabulary = catalog.load_vocabulary(sources.pairs) if sources.pairs_format == "catalog" else None

    # 1. cross-modal retrieval over every validation image and its text
    if "cmr" in config.tasks:
        kept = set(list(dict.fromkeys(p.product_id for p in pairs))[: config.cmr_products])
        items = [p for p in pairs if p.product_id in kept]
        sim = cmr_scores(model, items, config.batch_size, progress)
        ids = np.array([p.product_id for p in items])
        subs = np.array([p.subcategory for p in items])
        sample100 = cmr_sample100(sim, ids, subs, n_queries=config.cmr_queries, seeds=config.cmr_seeds)
        metrics.update(_flatten("cmr.sample100", sample100))
        metrics["cmr.sample100.short_draws"] = float(sample100["short_of_negatives"])
        metrics["cmr.items"] = float(len(items))
        metrics.update(_flatten("cmr.full", cmr_full(sim, ids)))
        if details is not None:
            curve = cmr_full(sim, ids, ks=range(1, 51))
            details.curves.update({"cmr.full.i2t": curve["i2t"], "cmr.full.t2i": curve["t2i"]})

    # 2. composed retrieval, per Fashion-IQ category, image / caption / both
    if "cir" in config.tasks:
        root, split = sources.fashioniq, config.split or EVAL_SPLITS["fashioniq"]
        variants: dict[str, dict] = {"img": {}, "cap": {}, "both": {}}
        baselines: dict[str, dict] = {"text_only": {}, "image_only": {}}  # one input alone: what composing adds
        galleries, n_queries = [], 0
        for category in fashioniq_categories(root, split, config.categories):
            s = cir_scores(model, root, split, category, gallery_captions, config.batch_size, progress,
                           max_queries=config.cir_queries, seed=config.seed)
            galleries.append(s["image"].shape[1])
            n_queries += s["image"].shape[0]
            variants["img"][category] = fashioniq_recall(s["image"], s["target_index"])
            for name, per in baselines.items():
                per[category] = fashioniq_recall(s[name], s["target_index"])
            if details is not None:  # the curve of the score that ranks (both, when there are captions)
                main_scores = s["image"] if s["caption"] is None else combine_scores(s["image"], s["caption"])
                details.curves[f"cir.{category}"] = fashioniq_recall(main_scores, s["target_index"], ks=range(1, 101))
            if s["caption"] is not None:
                variants["cap"][category] = fashioniq_recall(s["caption"], s["target_index"])
                variants["both"][category] = fashioniq_recall(combine_scores(s["image"], s["caption"]),
                                                              s["target_index"])
        main = "both" if variants["both"] else "img"
        metrics.update({f"cir.{k}": v for k, v in fashioniq_summary(variants[main]).items()})
        metrics["cir.gallery_min"] = float(min(galleries))
        metrics["cir.queries"] = float(n_queries)
        for name, per in variants.items():
            if per:
                metrics[f"cir.variants.{name}.avg.score"] = fashioniq_summary(per)["avg.score"]
        for name, per in baselines.items():
            metrics[f"cir.baseline.{name}.avg.score"] = fashioniq_summary(per)["avg.score"]

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
            predictions.update({p.item_id: said(t) for p, t in zip(chunk, texts)})
            if progress:
                progress("captioning", start + len(chunk), len(items))
        scores = caption_scores(predictions, {p.item_id: [p.caption] for p in items})
        metrics.update({f"cap.{k}": float(v) for k, v in scores.items()})
        flags: dict[str, dict[str, bool]] = {}
        if vocabulary is not None and _has_attributes(items):
            from unifashion.evaluation.attributes import caption_attribute_flags, caption_attribute_scores

            truths = {p.item_id: {a: _attribute(p, a) for a in PROBED} for p in items}
            attr = caption_attribute_scores(predictions, truths, vocabulary)
            ceiling = caption_attribute_scores({p.item_id: p.caption for p in items}, truths, vocabulary)
            metrics.update({f"cap.attr.{a}": attr[a] for a in PROBED})
            metrics["cap.loops"] = attr["loops"]
            metrics.update({f"cap.attr_reference.{a}": ceiling[a] for a in PROBED})
            metrics["cap.loops_reference"] = ceiling["loops"]
            flags = {k: caption_attribute_flags(predictions[k], truths[k], vocabulary) for k in predictions}
        if details is not None:
            details.captions = [{"image": p.image, "prediction": predictions[p.item_id], "reference": p.caption,
                                 "flags": flags.get(p.item_id, {})} for p in items[: details.examples]]

    # 4. generation from the descriptions: FID/KID against as many real images (and the real-vs-real
    # floor), text adherence by the model's own score, attribute adherence by the probes
    if "gen" in config.tasks:
        from unifashion.evaluation.generation_metrics import dominant_colour_match, frechet_distance, kernel_inception_distance

        n = min(config.generation_items, len(products) // 2)
        if n < 2:
            raise DataError(f"generation needs at least 4 evaluation products, the data has {len(products)}")
        items, floor_items = products[:n], products[n:2 * n]
        texts = [p.extra.get("detailed", p.caption) for p in items]  # the world's long description when it has one
        generated = []
        for start in range(0, len(items), config.batch_size):
            generated += model.generate(texts=texts[start:start + config.batch_size], steps=config.generation_steps,
                                        sampler=config.sampler, guidance_scale=config.guidance_scale,
                                        seed=config.seed + start)
            if progress:
                progress("generating", min(start + config.batch_size, len(items)), len(items))
        size = generated[0].size
        fake = _uint8(generated)
        f_real = cache.real_features([p.image for p in items], size)
        f_floor = cache.real_features([p.image for p in floor_items], size)
        metrics.update(_realism(cache, "gen", f_real, fake))
        metrics["gen.fid_real"] = frechet_distance(f_real, f_floor)
        metrics["gen.kid_real"] = kernel_inception_distance(f_real, f_floor, subsets=50,
                                                            subset_size=min(n, 100))[0]
        metrics["gen.samples"] = float(n)
        metrics["gen.image_size"] = float(size[0])
        real_images = [p.image.load() for p in items]
        metrics["gen.model_itc_score"] = float(paired_scores(model, generated, texts).mean())
        metrics["gen.model_itc_score_real"] = float(paired_scores(model, real_images, texts).mean())
        readings: dict[str, np.ndarray] = {}
        if _has_attributes(items):
            real = _uint8(real_images, size)
            requested = np.array([COLOURS[p.extra["attributes"]["colour"]] for p in items])
            metrics["gen.colour_match"] = 100.0 * dominant_colour_match(fake, requested, COLOURS)
            metrics["gen.colour_match_real"] = 100.0 * dominant_colour_match(real, requested, COLOURS)
            train_pairs = sources.load_pairs("train")
            if _has_attributes(train_pairs):
                probe = cache.probe(model, train_pairs, size[0], config.probe_items, config.batch_size)
                wanted = {a: [_attribute(p, a) for p in items] for a in PROBED}
                readings = probe.predict(model, generated, config.batch_size)
                on_fake = {a: float(np.mean(readings[a] == np.asarray(v, dtype=str))) for a, v in wanted.items()}
                on_real = probe.accuracy(model, [_at_size(im, size[0]) for im in real_images], wanted,
                                         config.batch_size)
                metrics.update({f"gen.probe.{a}": on_fake[a] for a in PROBED})
                metrics.update({f"gen.probe.{a}_real": on_real[a] for a in PROBED})
        if details is not None:
            details.generations = [
                {"real": p.image, "generated": g, "text": t,
                 "probe": {a: (str(readings[a][i]), _attribute(p, a)) for a in readings}}
                for i, (p, g, t) in enumerate(list(zip(items, generated, texts))[: details.examples])]

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
                                                  sampler=config.sampler, guidance_scale=config.guidance_scale,
                                                  seed=config.seed + start)
                if progress:
                    progress(f"{task} {setting}", min(start + config.batch_size, len(samples)), len(samples))
            size = generated[0].size
            f_real = cache.real_features([s.person for s in samples], size)
            metrics.update(_realism(cache, f"{task}.{setting}", f_real, _uint8(generated)))
            if task == "tryon" and paired:
                metrics.update(_tryon_fidelity(model, sources, samples, generated, vocabulary, cache, config,
                                               details))
    return metrics


def _tryon_fidelity(model, sources: EvalSources, samples: list, generated: list, vocabulary: dict | None,
                    cache: EvalCache, config: EvalConfig, details: EvalDetails | None) -> dict[str, float]:
    """Paired try-on: PSNR outside the inpainting mask against the person (what must not change), and
    the colour the probe reads inside the mask against the colour the garment's caption names."""
    from unifashion.evaluation.attributes import find_mentions, garment_crop, psnr_outside_mask

    size = generated[0].size
    fake = _uint8(generated)  # (N, S, S, 3)
    real = _uint8([s.person.load() for s in samples], size)
    masks = np.stack([np.asarray(s.agnostic_mask.load().convert("L").resize(size, Image.Resampling.NEAREST)) > 127
                      for s in samples])  # (N, S, S)
    psnr = psnr_outside_mask(fake, real, masks)
    out = {"tryon.psnr_outside": float(np.mean(np.minimum(psnr, 100.0)))}  # identical images: capped at 100 dB
    # the ceiling of a latent try-on: the person through the VAE and back, outside the same mask
    round_trip = []
    for start in range(0, len(samples), config.batch_size):
        pixels = model.generator_pixels([s.person.load() for s in samples[start:start + config.batch_size]])
        with torch.no_grad():
            decoded = model.generator.decode_latents(model.generator.encode_images(pixels))  # (b, 3, S, S)
        round_trip.append(((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    vae_psnr = psnr_outside_mask(np.concatenate(round_trip), real, masks)
    out["tryon.psnr_outside_vae"] = float(np.mean(np.minimum(vae_psnr, 100.0)))
    colour: dict[int, tuple[str, str]] = {}
    if vocabulary is not None and sources.pairs_format == "catalog" and "colour" in vocabulary:
        train_pairs = sources.load_pairs("train")
        if _has_attributes(train_pairs):
            probe = cache.probe(model, train_pairs, size[0], config.probe_items, config.batch_size)
            named = [find_mentions(s.caption or "", vocabulary["colour"]) for s in samples]
            keep = [i for i, m in enumerate(named) if m]
            if keep:
                wanted = {"colour": [named[i][0] for i in keep]}
                crops = lambda images: [Image.fromarray(garment_crop(images[i], masks[i], size[0])) for i in keep]  # noqa: E731
                read = probe.predict(model, crops(fake), config.batch_size)["colour"]
                out["tryon.probe.colour"] = float(np.mean(read == np.asarray(wanted["colour"], dtype=str)))
                out["tryon.probe.colour_real"] = probe.accuracy(model, crops(real), wanted, config.batch_size)["colour"]
                colour = {i: (str(read[j]), wanted["colour"][j]) for j, i in enumerate(keep)}
    if details is not None:
        details.tryons = [{"sample": s, "result": g, "psnr_outside": float(psnr[i]), "colour": colour.get(i)}
                          for i, (s, g) in enumerate(list(zip(samples, generated))[: details.examples])]
    return out


def evaluate_world(model, world: Path, config: EvalConfig = EvalConfig(), *,
                   gallery_captions: dict[str, str] | None = None, progress: ProgressFn | None = None,
                   details: EvalDetails | None = None, cache: EvalCache | None = None) -> dict:
    """`evaluate` on a synthetic world (its catalog, Fashion-IQ and VITON-HD folders)."""
    return evaluate(model, find_sources([Path(world)]), config, gallery_captions=gallery_captions, progress=progress,
                    details=details, cache=cache)


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
