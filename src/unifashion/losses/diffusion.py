"""The q2I loss: latent-diffusion noise prediction conditioned on the adapted queries (paper §3.1.2, Eq. 7).

One training step of DDPM: noise ~ N(0, I), timesteps uniform in [0, num_train_timesteps), noisy
latents from the generator's one noise scheduler (`add_noise`), the condition replaced by the
learned null condition with probability condition_dropout (classifier-free guidance), and the MSE
between the UNet's prediction and the target of the scheduler's prediction_type: the noise
(epsilon), the velocity (v_prediction, `get_velocity`) or the clean latents (sample).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def diffusion_target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor,
                     timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet must predict for the scheduler's prediction_type, (B, C, h, w)."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise ValueError(f"unsupported prediction_type {kind!r}; expected epsilon, v_prediction or sample")


class NoisePredictionLoss(nn.Module):
    """forward(generator_model, latents (B, C, h, w), condition (B, Q, Dc), extra_channels=None, rng=None)
    -> {"q2i_loss"}.

    generator_model is a `Generator` (or a DDP wrapper of one: its forward is called, the scheduler and
    `drop_condition` are taken from `.module`). rng (a torch.Generator) makes noise, timesteps and
    condition dropout reproducible; it is used on its own device and the draws moved to the latents'.
    """

    def forward(
        self,
        generator_model: nn.Module,
        latents: torch.Tensor,
        condition: torch.Tensor,
        extra_channels: torch.Tensor | None = None,
        rng: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        inner = getattr(generator_model, "module", generator_model)  # DDP keeps the Generator in .module
        scheduler = inner.noise_scheduler  # the one scheduler: training noise and every sampler
        if latents.dim() != 4:
            raise ValueError(f"latents must be (B, C, h, w), got {tuple(latents.shape)}")
        b = latents.shape[0]
        if b == 0:
            raise ValueError("q2I got an empty batch")
        draw_device = rng.device if rng is not None else latents.device
        # 1. noise and timesteps
        noise = torch.randn(latents.shape, generator=rng, device=draw_device, dtype=torch.float32)
        noise = noise.to(device=latents.device, dtype=latents.dtype)  # (B, C, h, w)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=rng,
                                  device=draw_device).to(latents.device)  # (B,)
        # 2. forward diffusion q(x_t | x_0)
        noisy = scheduler.add_noise(latents, noise, timesteps)  # (B, C, h, w)
        # 3. classifier-free guidance dropout of the condition
        condition = inner.drop_condition(condition, generator=rng)  # (B, Q, Dc)
        # 4. prediction and target
        pred = generator_model(noisy, timesteps, condition, extra_channels)  # (B, C, h, w)
        target = diffusion_target(scheduler, latents, noise, timesteps)
        return {"q2i_loss": F.mse_loss(pred.float(), target.float())}
