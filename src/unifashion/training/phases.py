"""The training phases as configuration: what trains, what is frozen, which losses, which optimiser settings.

Paper §3 / Appendix B, in the order they run:
  0. `AutoencoderPretraining` — the embedded generator's VAE from scratch (no pretrained one offline).
  1a. `QFormerPretraining` — Q-Former on image-caption pairs: ITC + ITM (BLIP-2 stage 1).
  1b. `GenerativeAdaptation` — Q-Former frozen; adapters + LoRA LLM learn ITG, adapters + UNet learn q2I.
  2. `ComposedFinetuning` — Q-Former tuned on triplets: L_cir + ITG + q2I towards the target; LLM,
     diffusion and adapters frozen.
  3. `GarmentGeneration` — the generation fine-tuning of Figure 3: the inpainting UNet on try-on and design
     samples (masked person, mask, garment sketch, pose and the encoded garment/caption -> the person).
Each phase freezes everything, then unfreezes its own parameters in `parameter_groups`; its `losses`
returns the unweighted `*_loss` terms and `loss_weights` says how the trainer sums them. A term whose
weight is 0 is not computed at all (ITM is ~70% of a phase-1a step on 2 cores; the quickstart turns it
off when its budget cannot make it learn). Each phase also declares the data it trains on
(`training_data`) and the steps `run_phase` takes around training (`TrainingPhase`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

import torch

from unifashion.data.training_sets import (FASHIONIQ_TRIPLETS, IMAGE_TEXT_PAIRS, VITONHD_TRYON, TrainingData,
                                           TrainingDataKind)
from unifashion.errors import ConfigError
from unifashion.losses.autoencoder import AutoencoderLoss
from unifashion.losses.captioning import CaptionLoss
from unifashion.losses.composed import ComposedRetrievalLoss
from unifashion.losses.contrastive import ImageTextContrastiveLoss, clamp_temperature_
from unifashion.losses.diffusion import NoisePredictionLoss
from unifashion.losses.matching import ImageTextMatchingLoss
from unifashion.models.unified import UniFashion


def with_settings(phase, settings: dict):
    """A copy of `phase` with some settings changed (e.g. {"train_diffusion": False}); each value must have
    the setting's type (an int or a numeric string is accepted for a float), and `name` stays."""
    known = {f.name: f for f in fields(phase) if f.name != "name"}
    changes = {}
    for key, value in settings.items():
        if key not in known:
            raise ConfigError(f"{key!r} is not a {phase.name} setting; its settings: {', '.join(known)}")
        current = getattr(phase, key)
        if isinstance(current, float) and not isinstance(value, bool):
            try:  # an int, or a string like "1e-3" (which YAML 1.1 does not read as a number)
                value = float(value)
            except (TypeError, ValueError):
                pass
        if type(value) is not type(current):
            raise ConfigError(f"{phase.name} setting {key}={value!r}: expected a {type(current).__name__}")
        changes[key] = value
    return replace(phase, **changes)


class TrainingPhase:
    """What every phase declares besides its settings (the dataclass fields) and the trainer's `Phase`
    protocol: the data it trains on and its steps around training (by default none)."""

    training_data: ClassVar[TrainingDataKind]
    main_lr: ClassVar[str] = "lr"  # the setting holding the learning rate of the phase's main group

    def for_data(self, data: TrainingData):
        """The phase as it trains on `data` (by default itself)."""
        return self

    def prepare_model(self, model: UniFashion) -> None:
        """Before training (and before a resumed checkpoint is loaded)."""

    def finish_model(self, model: UniFashion, data: TrainingData, summary: dict) -> None:
        """After training, before the model is saved; may add to the trainer's summary."""


def _freeze_all(model: UniFashion) -> None:
    model.requires_grad_(False)


def _trainable(*modules_or_params) -> list[torch.nn.Parameter]:
    params = []
    for m in modules_or_params:
        if isinstance(m, torch.nn.Parameter):
            m.requires_grad_(True)
            params.append(m)
        else:
            m.requires_grad_(True)
            params.extend(p for p in m.parameters())
    return params


def _captioner_parameters(model: UniFashion) -> list[torch.nn.Parameter]:
    params = model.captioner.adaptation_parameters()  # LoRA, or the whole LM when it is random
    for p in params:
        p.requires_grad_(True)
    return params


@dataclass(frozen=True)
class AutoencoderPretraining(TrainingPhase):
    training_data: ClassVar[TrainingDataKind] = IMAGE_TEXT_PAIRS  # their images
    name: str = "vae"
    lr: float = 1e-3  # a small VAE from scratch
    weight_decay: float = 0.0
    kl_weight: float = 1e-6
    sample_posterior: bool = False  # decode the posterior mean (AutoencoderLoss: colour kept in 50% of renders, not 14%)

    @property
    def loss_weights(self) -> dict[str, float]:
        return {"recon_loss": 1.0, "kl_loss": 1.0}

    def parameter_groups(self, model: UniFashion) -> list[dict]:
        _freeze_all(model)
        return [{"params": _trainable(model.generator.vae), "lr": self.lr, "weight_decay": self.weight_decay}]

    def losses(self, model: UniFashion, batch: dict) -> dict[str, torch.Tensor]:
        pixels = model.generator_pixels(batch["image"])  # (B, 3, S, S)
        return AutoencoderLoss(self.kl_weight, self.sample_posterior)(model.generator.vae, pixels)

    def finish_model(self, model: UniFashion, data: TrainingData, summary: dict) -> None:
        # latents must have unit variance for the diffusion schedule: calibrate on training images
        sample = [data.dataset[i].image for i in range(min(64, len(data.dataset)))]
        with torch.no_grad():
            summary["vae_scaling_factor"] = model.generator.calibrate_scaling_factor(model.generator_pixels(sample))


@dataclass(frozen=True)
class QFormerPretraining(TrainingPhase):
    training_data: ClassVar[TrainingDataKind] = IMAGE_TEXT_PAIRS
    name: str = "phase1a"
    lr: float = 1e-4  # BLIP-2 stage 1
    weight_decay: float = 0.05
    itc_weight: float = 1.0
    itm_weight: float = 1.0

    @property
    def loss_weights(self) -> dict[str, float]:
        return {"itc_loss": self.itc_weight, "itm_loss": self.itm_weight}

    def parameter_groups(self, model: UniFashion) -> list[dict]:
        _freeze_all(model)
        return [{"params": _trainable(model.qformer, model.temperature), "lr": self.lr,
                 "weight_decay": self.weight_decay}]

    def losses(self, model: UniFashion, batch: dict) -> dict[str, torch.Tensor]:
        clamp_temperature_(model.temperature)  # BLIP-2 keeps the learnable temperature in range
        tokens = model.image_tokens(batch["image"])  # (B, N, D), cached frozen features
        ids, mask = model.tokenize(batch["text"])  # (B, L)
        product_ids = batch["product_id"].to(tokens.device)  # (B,)
        image = model.qformer.image_features(tokens)
        text = model.qformer.text_features(ids, mask)
        out = ImageTextContrastiveLoss()(image.image_embeds, text.text_embeds, model.temperature, product_ids)
        if not self.itm_weight:
            return out
        # hard negatives are drawn from softmax(sim / temperature), as LAVIS does
        sim = (model.similarity(image.image_embeds, text.text_embeds) / model.temperature).detach()  # (B, B)
        out.update(ImageTextMatchingLoss()(model.qformer.itm_logits, tokens, ids, mask, sim, sim.t(), product_ids))
        return out


@dataclass(frozen=True)
class GenerativeAdaptation(TrainingPhase):
    training_data: ClassVar[TrainingDataKind] = IMAGE_TEXT_PAIRS
    main_lr: ClassVar[str] = "llm_lr"
    name: str = "phase1b"
    llm_lr: float = 2e-4  # LoRA on the LLM (paper: 2e-5 for Vicuna-7B r128; a 135M LM with r16 needs more)
    adapter_lr: float = 1e-4
    diffusion_lr: float = 1e-4  # paper
    weight_decay: float = 0.0
    caption_style: str = "professional"  # FashionGen-style descriptions
    itg_weight: float = 1.0
    q2i_weight: float = 1.0
    # q2I examples conditioned on their caption composed with a blank canvas (what `generate(texts=...)`
    # feeds) instead of on their image's queries: without them the UNet never sees the queries that
    # text-only generation gives it (measured at the quickstart's budget: no colour gain yet, the UNet is
    # far from converged; see README)
    text_condition_fraction: float = 0.5
    train_llm: bool = True  # False: diffusion only (ablation "+diffusion without LLM")
    train_diffusion: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.text_condition_fraction <= 1.0:
            raise ConfigError(f"text_condition_fraction must be in [0, 1], got {self.text_condition_fraction}")

    def for_data(self, data: TrainingData):
        """Captioning in the data's own style (Fashion200K's are short titles, not professional copy)."""
        return self if data.style == self.caption_style else replace(self, caption_style=data.style)

    @property
    def loss_weights(self) -> dict[str, float]:
        return {"itg_loss": self.itg_weight if self.train_llm else 0.0,
                "q2i_loss": self.q2i_weight if self.train_diffusion else 0.0}

    def parameter_groups(self, model: UniFashion) -> list[dict]:
        _freeze_all(model)
        groups = [{"params": _trainable(model.adapters), "lr": self.adapter_lr, "weight_decay": self.weight_decay}]
        if self.train_llm:
            groups.append({"params": _captioner_parameters(model), "lr": self.llm_lr, "weight_decay": self.weight_decay})
        if self.train_diffusion:
            groups.append({"params": _trainable(model.generator.unet, model.generator.null_condition),
                           "lr": self.diffusion_lr, "weight_decay": self.weight_decay})
        return groups

    def losses(self, model: UniFashion, batch: dict) -> dict[str, torch.Tensor]:
        texts = list(batch["text"])
        # q2I conditions its first `worded` examples on their words (the batch is shuffled)
        worded = round(self.text_condition_fraction * len(texts)) if self.train_diffusion else 0
        imaged_from = 0 if self.train_llm else worded  # ITG needs every image's queries, q2I only the rest
        # the Q-Former and the VAE are frozen in this phase: their outputs are computed once per image
        images = batch["image"][imaged_from:]
        queries = model.frozen_image_queries(images) if images else None  # (B - imaged_from, 32, H)
        out: dict[str, torch.Tensor] = {}
        if self.train_llm:
            lm = model.captioner(model.adapters.soft_prompt(queries), self.caption_style, texts)
            out.update(CaptionLoss()(lm["logits"], lm["labels"]))
        if self.train_diffusion:
            latents = model.frozen_latents(batch["image"])  # (B, C, h, w)
            parts = [model.frozen_canvas_queries(texts[:worded])] if worded else []  # (w, 32, H)
            if queries is not None:
                parts.append(queries[worded - imaged_from:])  # (B - w, 32, H)
            condition = torch.cat(parts)  # (B, 32, H)
            out.update(NoisePredictionLoss()(model.generator, latents, model.adapters.condition(condition)))
        return out


@dataclass(frozen=True)
class ComposedFinetuning(TrainingPhase):
    training_data: ClassVar[TrainingDataKind] = FASHIONIQ_TRIPLETS
    name: str = "phase2"
    lr: float = 2e-5  # SPRC / UniFashion phase 2 on BLIP-2; raise for a small model trained briefly
    weight_decay: float = 0.05
    cir_weight: float = 1.0  # the two ITC terms of L_cir
    cir_itm_weight: float = 1.0  # the ITM(t, Z_T) term of L_cir
    itg_weight: float = 0.1
    q2i_weight: float = 0.1
    caption_style: str = "detailed"  # the target's Fashion-IQ-cap style description

    @property
    def loss_weights(self) -> dict[str, float]:
        return {"cir_image_loss": self.cir_weight, "cir_caption_loss": self.cir_weight,
                "cir_itm_loss": self.cir_itm_weight, "itg_loss": self.itg_weight, "q2i_loss": self.q2i_weight}

    def parameter_groups(self, model: UniFashion) -> list[dict]:
        _freeze_all(model)  # LLM, diffusion and adapters frozen; gradients still flow through them
        return [{"params": _trainable(model.qformer, model.temperature), "lr": self.lr,
                 "weight_decay": self.weight_decay}]

    def losses(self, model: UniFashion, batch: dict) -> dict[str, torch.Tensor]:
        clamp_temperature_(model.temperature)
        ref_tokens = model.image_tokens(batch["reference"])  # (B, N, D)
        tgt_tokens = model.image_tokens(batch["target"])  # (B, N, D)
        ids, mask = model.tokenize(batch["modification"])  # (B, L)
        composed = model.qformer.composed_features(ref_tokens, ids, mask)
        target_image = model.qformer.image_features(tgt_tokens).image_embeds  # (B, 32, E)
        target_caption = model.qformer.text_features(*model.tokenize(batch["target_caption"])).text_embeds  # (B, E)
        target_ids = batch["target_id"].to(ref_tokens.device)
        itm = ({"itm_logits_fn": model.qformer.itm_logits, "target_image_tokens": tgt_tokens, "mod_ids": ids,
                "mod_mask": mask} if self.cir_itm_weight else {})
        out = ComposedRetrievalLoss()(composed.composed_embeds, target_image, target_caption, model.temperature,
                                      target_ids=target_ids, **itm)
        if self.itg_weight:
            lm = model.captioner(model.adapters.soft_prompt(composed.queries), self.caption_style,
                                 list(batch["target_caption"]))
            out.update(CaptionLoss()(lm["logits"], lm["labels"]))
        if self.q2i_weight:
            latents = model.frozen_latents(batch["target"])  # (B, C, h, w), the frozen VAE's, once per image
            out.update(NoisePredictionLoss()(model.generator, latents, model.adapters.condition(composed.queries)))
        return out


@dataclass(frozen=True)
class GarmentGeneration(TrainingPhase):
    """Paper Figure 3 / Appendix B: try-on and fashion design. The generator becomes the inpainting variant
    (its UNet also reads the masked person's latents, the mask, the garment sketch and the pose map;
    `prepare_model` switches it) and learns q2I towards the person image, conditioned on
    `model.tryon_condition_queries`.
    Trains the UNet, the queries -> UNet adapter and the null condition; Q-Former, VAE and LLM frozen."""
    training_data: ClassVar[TrainingDataKind] = VITONHD_TRYON
    main_lr: ClassVar[str] = "diffusion_lr"
    name: str = "tryon"
    diffusion_lr: float = 1e-4  # paper: AdamW, fixed 1e-4 (360k iterations at batch 32)
    adapter_lr: float = 1e-4
    weight_decay: float = 0.0
    q2i_weight: float = 1.0
    garment_image: bool = True  # try-on: condition on the in-shop garment (+ caption); False: design from words

    @property
    def loss_weights(self) -> dict[str, float]:
        return {"q2i_loss": self.q2i_weight}

    def prepare_model(self, model: UniFashion) -> None:
        model.make_generator_inpainting()

    def parameter_groups(self, model: UniFashion) -> list[dict]:
        if not model.generator.config.inpainting:
            raise ConfigError("the tryon phase needs the inpainting generator: call model.make_generator_inpainting() "
                              "first (unifashion train does)")
        _freeze_all(model)
        return [{"params": _trainable(model.adapters.to_condition), "lr": self.adapter_lr,
                 "weight_decay": self.weight_decay},
                {"params": _trainable(model.generator.unet, model.generator.null_condition), "lr": self.diffusion_lr,
                 "weight_decay": self.weight_decay}]

    def losses(self, model: UniFashion, batch: dict) -> dict[str, torch.Tensor]:
        # the inputs of the UNet come from frozen parts: computed once per sample
        latents, extra, queries = model.frozen_tryon_inputs(batch["sample"], garment_image=self.garment_image)
        return NoisePredictionLoss()(model.generator, latents, model.adapters.condition(queries), extra_channels=extra)


PHASES = (AutoencoderPretraining, QFormerPretraining, GenerativeAdaptation, ComposedFinetuning, GarmentGeneration)


def phase_by_name(name: str) -> type[TrainingPhase]:
    """The phase class whose default `name` is `name` (vae, phase1a, phase1b, phase2, tryon)."""
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise ConfigError(f"unknown phase {name!r} (known: {', '.join(p.name for p in PHASES)})")
