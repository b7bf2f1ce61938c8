"""Training the from-scratch VAE of the embedded generator (no pretrained autoencoder exists offline).

A latent diffusion model needs its autoencoder first: reconstruction (L1 + MSE, as LDM's simple
variant without the adversarial term) plus a small KL to keep the latent space smooth and bounded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn


class AutoencoderLoss(nn.Module):
    def __init__(self, kl_weight: float = 1e-6, sample_posterior: bool = False):
        super().__init__()
        self.kl_weight = kl_weight  # LDM's KL-f8 uses 1e-6: the KL only regularises the scale
        # LDM decodes posterior samples; a fresh VAE's posterior starts at unit variance, and with a 1e-6 KL
        # that noise drowns the latent for hundreds of steps: at the quickstart's budget reconstructions
        # of samples keep 14% of the garments' colour, of the mean 50% (scripts/vae_hue.py, 900 steps).
        # The generator encodes with the mean, so training on it matches what the UNet sees.
        self.sample_posterior = sample_posterior

    def forward(self, vae: AutoencoderKL, pixels: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """pixels (B, 3, H, W) in [-1, 1] -> {"recon_loss", "kl_loss"} (kl already weighted)."""
        posterior = vae.encode(pixels).latent_dist
        z = posterior.sample(generator=generator) if self.sample_posterior else posterior.mode()  # (B, C, h, w)
        recon = vae.decode(z).sample  # (B, 3, H, W)
        recon_loss = F.l1_loss(recon, pixels) + F.mse_loss(recon, pixels)
        kl_loss = posterior.kl().mean() / pixels[0].numel()  # per pixel, like the reconstruction terms
        return {"recon_loss": recon_loss, "kl_loss": self.kl_weight * kl_loss}
