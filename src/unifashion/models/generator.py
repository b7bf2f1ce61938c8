"""UniFashion's diffusion module: a latent diffusion model conditioned on the adapted Q-Former queries.

The task-specific adapter maps the 32 query outputs into the UNet's cross-attention width; those
tokens take the place of Stable Diffusion's CLIP text tokens (paper §3.1.2, Eq. 7 and 12). For try-on
and design (paper Fig. 3, Appendix B) the UNet also receives, inpainting style, the masked person
image (through the VAE), the mask, the garment sketch and the pose map as extra input channels.

Two sources, one code path:
- ``"scratch"`` (embedded default): a small ``AutoencoderKL`` + ``UNet2DConditionModel`` built from
  the config with random weights, trained here. A from-scratch latent model needs its autoencoder
  trained *before* the UNet: the trainer unfreezes ``generator.vae``, trains it on reconstruction
  (+ KL), calls :meth:`Generator.calibrate_scaling_factor`, freezes it again, then trains the UNet.
- ``"stable_diffusion"`` (paper scale): a diffusers directory on local disk (``vae/``, ``unet/``,
  ``scheduler/``), e.g. Stable Diffusion 1.4. Nothing is fetched: ``local_files_only=True``.

One noise scheduler: ``noise_scheduler`` (a ``DDPMScheduler``) adds noise in training, and the
samplers (PLMS = ``PNDMScheduler`` with ``skip_prk_steps``, DPM-Solver++) are built from its config,
so betas and timesteps are the same in training and sampling by construction.

The noise-prediction (q2I) loss is not here: ``forward`` returns the UNet's prediction only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    PNDMScheduler,
    UNet2DConditionModel,
)
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import load_file, save_file
from torch import nn

from unifashion.config import from_dict, read_mapping, to_dict
from unifashion.errors import DataError

CONFIG_NAME = "generator_config.json"
NULL_CONDITION_NAME = "null_condition.safetensors"
# masked-image latents (latent_channels) + mask (1) + sketch (1) + pose map (3)
NON_LATENT_EXTRA_CHANNELS = 1 + 1 + 3
SAMPLERS = ("plms", "dpm++")
# The sampling settings `Generator.sample` accepts (the command line's options check the same bounds).
# Steps: at most one per DDPM training timestep (the samplers pick `steps` of the 1000). Guidance:
# classifier-free guidance extrapolates cond - uncond by this factor; Stable Diffusion is used at
# 1-15. The larger it is, the further the latents leave the VAE's range (the quickstart model, 10
# DPM++ steps: 0.2% of pixel values clipped at 3, 3.6% at 15, 11% at 30, 16% at 100, 27% at 1e4:
# noise), and an infinite one gives NaN, decoded as a black picture.
MAX_SAMPLING_STEPS = 1000
MAX_GUIDANCE_SCALE = 30.0


def check_sampling(steps: int, guidance_scale: float, max_steps: int = MAX_SAMPLING_STEPS) -> None:
    """DataError naming the setting when `steps` is not an integer in [1, max_steps] or
    `guidance_scale` not a finite number in [0, MAX_GUIDANCE_SCALE]."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= max_steps:
        raise DataError(f"steps must be an integer from 1 to {max_steps}, got {steps!r}")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real) \
            or not 0.0 <= float(guidance_scale) <= MAX_GUIDANCE_SCALE:  # NaN fails both comparisons
        raise DataError(f"guidance scale must be a number from 0 to {MAX_GUIDANCE_SCALE:g}, got {guidance_scale!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    # "scratch": a small latent model trained here; "stable_diffusion": a diffusers dir (vae/, unet/, scheduler/)
    source: Literal["scratch", "stable_diffusion"] = "scratch"
    path: str | None = None  # the diffusers directory for "stable_diffusion" (provenance once saved)
    image_size: int = 64  # pixels; latents are image_size / 2**(len(vae_block_out_channels) - 1)
    num_queries: int = 32  # condition tokens per image (the Q-Former's queries) = null condition length
    # scratch AutoencoderKL: one down/up block each. Narrow at full resolution: (32, 64, 64) costs 0.45 s
    # per step at batch 16 and 64 px, (16, 32, 32) 0.17 s, and hue is learnt late (scripts/vae_hue.py)
    vae_block_out_channels: tuple[int, ...] = (16, 32, 32)
    vae_layers_per_block: int = 1  # resnets per VAE block
    latent_channels: int = 4  # channels of the VAE latent
    unet_block_out_channels: tuple[int, ...] = (32, 64, 64)  # scratch UNet blocks: 16 -> 8 -> 4 on 16x16 latents
    # per UNet block: self+cross-attention or not (at 16x16 it doubles the step time); the mid block always has it
    unet_attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1  # resnets (+ transformer) per UNet block
    norm_num_groups: int = 32  # GroupNorm groups in the UNet (must divide every UNet block width)
    # GroupNorm groups in the scratch VAE. One group keeps each channel's mean relative to the others:
    # with a channel or two per group the norm removes every channel's mean, which is the garment's hue
    # (900 steps, scripts/vae_hue.py: 1 group 50% colour match of reconstructions, 8 groups 19%)
    vae_norm_num_groups: int = 1
    cross_attention_dim: int = 256  # width of the condition tokens (the adapter maps queries to it)
    # passed to diffusers as is, where it is the number of HEADS per attention (diffusers issue 2011)
    attention_head_dim: int | tuple[int, ...] = 8
    # try-on/design: the UNet also takes masked-image latents, mask, sketch and pose map
    # (latent_channels + 1 + 1 + 3 extra input channels)
    inpainting: bool = False
    num_train_timesteps: int = 1000  # DDPM training timesteps
    beta_schedule: str = "scaled_linear"  # as Stable Diffusion
    beta_start: float = 0.00085  # Stable Diffusion's first beta
    beta_end: float = 0.012  # Stable Diffusion's last beta
    prediction_type: str = "epsilon"  # what the UNet predicts: "epsilon" | "v_prediction" | "sample"
    condition_dropout: float = 0.1  # probability of the learned null condition in training (for CFG)
    # scratch UNet only: the condition's mean token also enters the timestep embedding (a projection
    # "class" embedding, FiLM on every resnet), the global signal a small UNet learns to read first;
    # cross-attention to the 32 tokens stays. Stable Diffusion's UNet has no such input.
    pooled_condition: bool = False

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and comparable.
        for name in ("vae_block_out_channels", "unet_block_out_channels", "unet_attention"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.attention_head_dim, list):
            object.__setattr__(self, "attention_head_dim", tuple(self.attention_head_dim))
        if self.source not in ("scratch", "stable_diffusion"):
            raise ValueError(f"generator source must be 'scratch' or 'stable_diffusion', got {self.source!r}")
        if self.source == "stable_diffusion" and not self.path:
            raise ValueError(
                "generator source 'stable_diffusion' needs path= a diffusers directory with vae/, unet/, scheduler/"
            )
        if not 0.0 <= self.condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1], got {self.condition_dropout}")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {self.prediction_type!r}")
        if self.pooled_condition and self.source != "scratch":
            raise ValueError("pooled_condition needs the scratch UNet (Stable Diffusion's UNet has no class embedding)")
        if self.num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {self.num_queries}")
        if self.source == "scratch":
            vae_factor = 2 ** (len(self.vae_block_out_channels) - 1)
            unet_factor = 2 ** (len(self.unet_block_out_channels) - 1)
            if self.image_size % (vae_factor * unet_factor):
                raise ValueError(
                    f"image_size {self.image_size} must be divisible by {vae_factor * unet_factor} "
                    f"(VAE downsamples by {vae_factor}, UNet by {unet_factor})"
                )
            if len(self.unet_attention) != len(self.unet_block_out_channels):
                raise ValueError(
                    f"unet_attention {self.unet_attention} needs one flag per UNet block {self.unet_block_out_channels}"
                )
            for key, groups, widths in (("norm_num_groups", self.norm_num_groups, self.unet_block_out_channels),
                                        ("vae_norm_num_groups", self.vae_norm_num_groups,
                                         self.vae_block_out_channels)):
                if any(w % groups for w in widths):
                    raise ValueError(f"{key} {groups} must divide every block width {widths}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_block_out_channels) - 1)

    @property
    def extra_channels(self) -> int:
        """Extra UNet input channels of the inpainting variant (0 otherwise)."""
        return self.latent_channels + NON_LATENT_EXTRA_CHANNELS if self.inpainting else 0


def _scratch_vae(c: GeneratorConfig) -> AutoencoderKL:
    n = len(c.vae_block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=c.vae_block_out_channels,
        layers_per_block=c.vae_layers_per_block,
        latent_channels=c.latent_channels,
        norm_num_groups=c.vae_norm_num_groups,
        sample_size=c.image_size,
        # SD's 0.18215 is meaningless for a fresh autoencoder: calibrate_scaling_factor sets it once
        # the VAE is trained; 1.0 until then.
        scaling_factor=1.0,
    )


def _scratch_unet(c: GeneratorConfig) -> UNet2DConditionModel:
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in c.unet_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(c.unet_attention))
    return UNet2DConditionModel(
        sample_size=c.latent_size,
        in_channels=c.latent_channels + c.extra_channels,
        out_channels=c.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=c.unet_block_out_channels,
        layers_per_block=c.layers_per_block,
        norm_num_groups=c.norm_num_groups,
        cross_attention_dim=c.cross_attention_dim,
        attention_head_dim=c.attention_head_dim,
        **({"class_embed_type": "projection", "projection_class_embeddings_input_dim": c.cross_attention_dim}
           if c.pooled_condition else {}),
    )


def _scratch_scheduler(c: GeneratorConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=c.num_train_timesteps,
        beta_schedule=c.beta_schedule,
        beta_start=c.beta_start,
        beta_end=c.beta_end,
        prediction_type=c.prediction_type,
        clip_sample=False,  # latents are not bounded to [-1, 1]
        # "trailing": every sampler's first step starts at t = T - 1 (pure noise) whatever the step
        # count; SD's "leading" starts 2 PLMS steps at t = 501 (Lin et al. 2024, "Common Diffusion
        # Noise Schedules and Sample Steps are Flawed", table 2).
        timestep_spacing="trailing",
    )


def widen_conv_in(unet: UNet2DConditionModel, in_channels: int) -> None:
    """Give ``unet.conv_in`` more input channels, in place.

    The existing weights are copied into the first input channels and the new ones are zero, so the
    output is unchanged at start *whatever* the new channels hold (their weights are 0). The new
    width is written into the UNet config so that save_pretrained/from_pretrained round-trips.
    """
    old = unet.conv_in
    if in_channels < old.in_channels:
        raise ValueError(f"cannot narrow conv_in from {old.in_channels} to {in_channels} input channels")
    if in_channels == old.in_channels:
        return
    new = nn.Conv2d(
        in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride, padding=old.padding,
        device=old.weight.device, dtype=old.weight.dtype,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight  # (out, in_old, k, k)
        new.bias.copy_(old.bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    new.bias.requires_grad_(old.bias.requires_grad)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)


class Generator(nn.Module):
    """VAE + conditional UNet + the one noise scheduler + a learned null condition.

    Build with ``Generator(config)``; ``from_pretrained`` passes loaded parts instead.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        *,
        vae: AutoencoderKL | None = None,
        unet: UNet2DConditionModel | None = None,
        noise_scheduler: DDPMScheduler | None = None,
    ) -> None:
        super().__init__()
        given = [p is not None for p in (vae, unet, noise_scheduler)]
        if any(given) and not all(given):
            raise ValueError("pass all of vae, unet and noise_scheduler, or none")
        if not any(given):
            if config.source == "scratch":
                vae, unet, noise_scheduler = _scratch_vae(config), _scratch_unet(config), _scratch_scheduler(config)
            else:
                vae, unet, noise_scheduler = _load_diffusers_dir(Path(config.path))
                config = _config_from_parts(config, vae, unet, noise_scheduler)
                if config.inpainting:
                    widen_conv_in(unet, config.latent_channels + config.extra_channels)
        else:
            config = _config_from_parts(config, vae, unet, noise_scheduler)
        expected_in = config.latent_channels + config.extra_channels
        if unet.config.in_channels != expected_in:
            raise ValueError(
                f"UNet takes {unet.config.in_channels} input channels but the config needs {expected_in} "
                f"(inpainting={config.inpainting})"
            )
        self.config = config
        # The VAE is frozen while the UNet trains; a scratch VAE is trained first, separately, by
        # unfreezing it (generator.vae.requires_grad_(True)).
        self.vae = vae.requires_grad_(False)
        self.unet = unet
        self.noise_scheduler = noise_scheduler  # THE scheduler config: training noise and every sampler
        self.null_condition = nn.Parameter(torch.randn(1, config.num_queries, config.cross_attention_dim) * 0.02)

    def make_inpainting(self) -> None:
        """Turn a text-to-image generator into the inpainting variant in place (paper Figure 3): conv_in
        gains the extra channels with zero weights, so it predicts exactly as before until it trains."""
        if self.config.inpainting:
            return
        config = dataclasses.replace(self.config, inpainting=True)
        widen_conv_in(self.unet, config.latent_channels + config.extra_channels)
        self.config = config

    # ----------------------------------------------------------------------------------- latents
    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode_images(
        self, pixels: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> scaled latents (B, C, h, w).

        ``sample=False`` takes the posterior mean (deterministic); ``sample=True`` draws from it, as
        Stable Diffusion's training does.
        """
        self._check_pixels(pixels, 3, "pixels")
        dist = self.vae.encode(pixels).latent_dist
        latents = dist.sample(generator) if sample else dist.mode()  # (B, C, h, w)
        return latents * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) -> pixels (B, 3, H, W), nominally in [-1, 1] (not clamped)."""
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample

    @torch.no_grad()
    def calibrate_scaling_factor(self, pixels: torch.Tensor) -> float:
        """Set the VAE's scaling_factor to 1 / std of the unscaled latents of ``pixels`` (as LDM did
        for SD's 0.18215), so the UNet sees unit-variance latents. Call once the VAE is trained; the
        value is stored in the VAE config and saved with it."""
        latents = self.vae.encode(pixels).latent_dist.mode()
        factor = float(1.0 / latents.float().std().clamp_min(1e-6))
        self.vae.register_to_config(scaling_factor=factor)
        return factor

    def conditioning_channels(
        self, masked_image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor, pose: torch.Tensor
    ) -> torch.Tensor:
        """The inpainting inputs at latent resolution, in the UNet's channel order.

        masked_image (B, 3, H, W) in [-1, 1] goes through the VAE (scaled like the target latents);
        mask (B, 1, H, W) (1 = region to generate) is resized nearest, as diffusers' inpainting
        pipeline does; sketch (B, 1, H, W) and pose map (B, 3, H, W) are resized bilinear with
        antialiasing. Returns (B, latent_channels + 5, h, w).
        """
        self._check_pixels(masked_image, 3, "masked_image")
        b, _, h_img, w_img = masked_image.shape
        for name, t, ch in (("mask", mask, 1), ("sketch", sketch, 1), ("pose", pose, 3)):
            if t.ndim != 4 or t.shape[0] != b or t.shape[1] != ch or t.shape[2:] != masked_image.shape[2:]:
                raise ValueError(f"{name} must be ({b}, {ch}, {h_img}, {w_img}), got {tuple(t.shape)}")
        size = (h_img // self.vae_scale_factor, w_img // self.vae_scale_factor)
        masked_latents = self.encode_images(masked_image)  # (B, C, h, w)
        mask_small = F.interpolate(mask.to(masked_latents.dtype), size=size, mode="nearest")  # (B, 1, h, w)
        sketch_small = F.interpolate(sketch.to(masked_latents.dtype), size=size, mode="bilinear", antialias=True)
        pose_small = F.interpolate(pose.to(masked_latents.dtype), size=size, mode="bilinear", antialias=True)
        return torch.cat([masked_latents, mask_small, sketch_small, pose_small], dim=1)  # (B, C+5, h, w)

    # ----------------------------------------------------------------------------------- denoiser
    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor | int,
        condition: torch.Tensor,
        extra_channels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The UNet's prediction (noise for prediction_type "epsilon"), (B, C, h, w).

        condition (B, Q, cross_attention_dim): the adapted queries (or null_condition rows).
        extra_channels (B, latent_channels + 5, h, w): required iff config.inpainting.
        """
        self._check_inputs(noisy_latents, condition, extra_channels)
        sample = noisy_latents
        if extra_channels is not None:
            sample = torch.cat([noisy_latents, extra_channels.to(noisy_latents.dtype)], dim=1)  # (B, C+E, h, w)
        pooled = condition.mean(dim=1) if self.config.pooled_condition else None  # (B, Dc)
        return self.unet(sample, timesteps, encoder_hidden_states=condition, class_labels=pooled).sample  # (B, C, h, w)

    def drop_condition(self, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """For training: replace each row by the learned null condition with prob condition_dropout."""
        self._check_condition(condition)
        b = condition.shape[0]
        drop = torch.rand(b, generator=generator, device=generator.device if generator else "cpu")
        drop = (drop < self.config.condition_dropout).to(condition.device)  # (B,)
        null = self.null_condition.to(condition.dtype).expand(b, -1, -1)  # (B, Q, D)
        return torch.where(drop[:, None, None], null, condition)

    def guided_prediction(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        condition: torch.Tensor,
        extra_channels: torch.Tensor | None = None,
        guidance_scale: float = 3.0,
    ) -> torch.Tensor:
        """Classifier-free guidance: uncond + s * (cond - uncond), one UNet call on [null; cond].

        At guidance_scale == 1 this is the conditional prediction and the null branch is skipped.
        """
        if guidance_scale == 1.0:
            return self(latents, timestep, condition, extra_channels)
        b = latents.shape[0]
        null = self.null_condition.to(condition.dtype).expand(b, -1, -1)  # (B, Q, D)
        both = self(
            torch.cat([latents, latents]),  # (2B, C, h, w)
            timestep,
            torch.cat([null, condition]),  # (2B, Q, D)
            None if extra_channels is None else torch.cat([extra_channels, extra_channels]),
        )
        uncond, cond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    # ----------------------------------------------------------------------------------- sampling
    def make_sampler(self, sampler: str = "dpm++") -> PNDMScheduler | DPMSolverMultistepScheduler:
        """A fresh sampler built from the one training scheduler config.

        timestep_spacing is passed explicitly: diffusers' from_config drops keys the source config
        left at their default, so each sampler would otherwise fall back to its own default
        (PNDM "leading", DPM-Solver "linspace").
        """
        config = self.noise_scheduler.config
        shared = {"timestep_spacing": config.timestep_spacing, "steps_offset": config.steps_offset}
        if sampler == "plms":
            return PNDMScheduler.from_config(config, skip_prk_steps=True, **shared)
        if sampler == "dpm++":
            with _quiet_numpy_copy_warning():
                return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", **shared)
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")

    @torch.no_grad()
    def sample(
        self,
        condition: torch.Tensor,
        *,
        extra_channels: torch.Tensor | None = None,
        sampler: Literal["plms", "dpm++"] = "dpm++",
        steps: int = 25,
        guidance_scale: float = 3.0,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        keep_latents: torch.Tensor | None = None,
        keep_mask: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Generate images (B, 3, H, W) in [0, 1] for condition (B, Q, cross_attention_dim).

        ``keep_latents`` (B, C, h, w) scaled latents and ``keep_mask`` (B, 1, h, w) (1 = keep): after every
        step the kept region is replaced by the known latents noised to the next timestep, as diffusers'
        inpainting pipeline does, so that a try-on redraws the garment and keeps the person.

        ``progress(i, total)`` is called after each denoising step (i from 1). DPM-Solver++ runs
        exactly ``steps`` UNet calls; PLMS with skip_prk_steps runs steps + 1 for steps >= 2
        (diffusers repeats its second timestep to warm up the multistep history) and 1 for steps=1.
        """
        check_sampling(steps, guidance_scale, min(MAX_SAMPLING_STEPS, self.config.num_train_timesteps))
        self._check_condition(condition)
        b = condition.shape[0]
        device, dtype = condition.device, self.unet.dtype
        condition = condition.to(dtype)
        shape = (b, self.config.latent_channels, self.config.latent_size, self.config.latent_size)

        # 1. sampler from the shared scheduler config
        scheduler = self.make_sampler(sampler)
        with _quiet_numpy_copy_warning():
            scheduler.set_timesteps(int(steps), device=device)
        timesteps = scheduler.timesteps

        # 2. initial noise
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)  # (B, C, h, w)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must be {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
        self._check_inputs(latents, condition, extra_channels)
        if (keep_latents is None) != (keep_mask is None):
            raise ValueError("pass keep_latents and keep_mask together")
        if keep_latents is not None:
            if tuple(keep_latents.shape) != shape or tuple(keep_mask.shape) != (b, 1, *shape[2:]):
                raise ValueError(f"keep_latents must be {shape} and keep_mask {(b, 1, *shape[2:])}, got "
                                 f"{tuple(keep_latents.shape)} and {tuple(keep_mask.shape)}")
            keep_latents, keep_mask = keep_latents.to(device, dtype), keep_mask.to(device, dtype)
            keep_noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)  # (B, C, h, w)

        # 3. denoising loop with classifier-free guidance (batch [null; cond])
        for i, t in enumerate(timesteps):
            model_input = scheduler.scale_model_input(latents, t)
            noise_pred = self.guided_prediction(model_input, t, condition, extra_channels, guidance_scale)
            latents = scheduler.step(noise_pred, t, latents).prev_sample
            if keep_latents is not None:
                known = keep_latents if i + 1 == len(timesteps) else \
                    scheduler.add_noise(keep_latents, keep_noise, timesteps[i + 1:i + 2])  # (B, C, h, w)
                latents = keep_mask * known + (1 - keep_mask) * latents
            if progress is not None:
                progress(i + 1, len(timesteps))

        # 4. decode to [0, 1]
        pixels = self.decode_latents(latents)  # (B, 3, H, W) in ~[-1, 1]
        return (pixels / 2 + 0.5).clamp(0, 1)

    # ----------------------------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | Path, *, write_config: bool = True) -> None:
        """vae/, unet/ (diffusers, safetensors), scheduler/ config, null_condition.safetensors and
        generator_config.json; `write_config=False` leaves the config to a caller that saves it already
        (UniFashion's config.json), so that it is written once."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(directory / "vae", safe_serialization=True)
        self.unet.save_pretrained(directory / "unet", safe_serialization=True)
        self.noise_scheduler.save_pretrained(directory / "scheduler")
        save_file({"null_condition": self.null_condition.detach().contiguous().cpu()}, directory / NULL_CONDITION_NAME)
        if write_config:
            (directory / CONFIG_NAME).write_text(json.dumps(to_dict(self.config), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: GeneratorConfig | None = None) -> Generator:
        """Load what save_pretrained wrote (whatever the original source); nothing is downloaded. The
        config is the directory's generator_config.json when it has one (UniFashion models saved before
        their config.json became its one copy have it too), else `config`."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if config_path.is_file():
            config = from_dict(GeneratorConfig, read_mapping(config_path), where=str(config_path))
        elif config is None:
            raise ValueError(f"{config_path} not found: not a directory written by Generator.save_pretrained")
        vae, unet, noise_scheduler = _load_diffusers_dir(directory)
        model = cls(config, vae=vae, unet=unet, noise_scheduler=noise_scheduler)
        null = load_file(directory / NULL_CONDITION_NAME)["null_condition"]
        if null.shape != model.null_condition.shape:
            want = tuple(model.null_condition.shape)
            raise ValueError(f"null_condition in {directory} is {tuple(null.shape)}, expected {want}")
        with torch.no_grad():
            model.null_condition.copy_(null)
        return model

    # ----------------------------------------------------------------------------------- checks
    def _check_pixels(self, x: torch.Tensor, channels: int, name: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} must be (B, {channels}, H, W), got {tuple(x.shape)}")
        f = self.vae_scale_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"{name} height and width must be divisible by {f}, got {tuple(x.shape[2:])}")

    def _check_condition(self, condition: torch.Tensor) -> None:
        d = self.config.cross_attention_dim
        if condition.ndim != 3 or condition.shape[-1] != d:
            raise ValueError(f"condition must be (B, Q, {d}) (cross_attention_dim), got {tuple(condition.shape)}")
        if condition.shape[1] != self.config.num_queries:
            q = self.config.num_queries
            raise ValueError(f"condition has {condition.shape[1]} tokens, the null condition {q} (num_queries)")

    def _check_inputs(
        self, latents: torch.Tensor, condition: torch.Tensor, extra_channels: torch.Tensor | None
    ) -> None:
        self._check_condition(condition)
        c = self.config.latent_channels
        if latents.ndim != 4 or latents.shape[1] != c:
            raise ValueError(f"latents must be (B, {c}, h, w), got {tuple(latents.shape)}")
        if condition.shape[0] != latents.shape[0]:
            raise ValueError(f"condition batch {condition.shape[0]} != latents batch {latents.shape[0]}")
        e = self.config.extra_channels
        if self.config.inpainting:
            if extra_channels is None:
                raise ValueError(
                    f"this is an inpainting generator: pass extra_channels (B, {e}, h, w) from conditioning_channels()"
                )
            want = (latents.shape[0], e, *latents.shape[2:])
            if tuple(extra_channels.shape) != want:
                raise ValueError(f"extra_channels must be {want}, got {tuple(extra_channels.shape)}")
        elif extra_channels is not None:
            raise ValueError("extra_channels given but this generator is not an inpainting one (inpainting=False)")


@contextlib.contextmanager
def _quiet_numpy_copy_warning():
    """diffusers 0.42's DPMSolverMultistepScheduler calls np.array(tensor) (in __init__ and
    set_timesteps), which numpy 2 flags with a DeprecationWarning about torch's __array__; harmless."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy keyword")
        yield


def _load_diffusers_dir(directory: Path) -> tuple[AutoencoderKL, UNet2DConditionModel, DDPMScheduler]:
    """vae/, unet/, scheduler/ of a diffusers directory, from local files only."""
    missing = [s for s in ("vae", "unet", "scheduler") if not (directory / s).is_dir()]
    if missing:
        raise ValueError(f"{directory} is not a diffusers directory: missing {', '.join(s + '/' for s in missing)}")
    vae = AutoencoderKL.from_pretrained(directory, subfolder="vae", local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(directory, subfolder="unet", local_files_only=True)
    # SD ships a PNDMScheduler config; its betas/timesteps are what we train with (as a DDPMScheduler).
    noise_scheduler = DDPMScheduler.from_pretrained(directory, subfolder="scheduler", local_files_only=True)
    return vae, unet, noise_scheduler


def _config_from_parts(
    config: GeneratorConfig, vae: AutoencoderKL, unet: UNet2DConditionModel, scheduler: DDPMScheduler
) -> GeneratorConfig:
    """The config as the loaded parts really are (cross_attention_dim 768 for SD 1.4, etc.)."""
    vae_blocks = tuple(vae.config.block_out_channels)
    unet_sample = unet.config.sample_size
    if isinstance(unet_sample, (list, tuple)):
        unet_sample = unet_sample[0]
    head = unet.config.attention_head_dim
    return dataclasses.replace(
        config,
        image_size=int(unet_sample) * 2 ** (len(vae_blocks) - 1),
        vae_block_out_channels=vae_blocks,
        vae_layers_per_block=vae.config.layers_per_block,
        latent_channels=vae.config.latent_channels,
        vae_norm_num_groups=vae.config.norm_num_groups,
        unet_block_out_channels=tuple(unet.config.block_out_channels),
        unet_attention=tuple(t.startswith("CrossAttn") for t in unet.config.down_block_types),
        layers_per_block=unet.config.layers_per_block,
        norm_num_groups=unet.config.norm_num_groups,
        cross_attention_dim=unet.config.cross_attention_dim,
        attention_head_dim=tuple(head) if isinstance(head, (list, tuple)) else head,
        num_train_timesteps=scheduler.config.num_train_timesteps,
        beta_schedule=scheduler.config.beta_schedule,
        beta_start=scheduler.config.beta_start,
        beta_end=scheduler.config.beta_end,
        prediction_type=scheduler.config.prediction_type,
        pooled_condition=unet.config.get("class_embed_type") == "projection",
    )
