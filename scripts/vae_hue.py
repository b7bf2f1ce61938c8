"""Does the from-scratch VAE keep hue? Trains a fresh quickstart VAE for --steps and measures the dominant
colour of its reconstructions of validation renders against the requested colour.

    .venv/bin/python scripts/vae_hue.py WORLD [--steps 150] [--lr 1e-3] [--sample] [--blocks 32,64,64]

(--sample trains on posterior samples, as LDM; the default trains on the posterior mean.)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from unifashion.data.formats import catalog
from unifashion.data.synthetic.taxonomy import COLOURS
from unifashion.evaluation.generation import dominant_colour_match
from unifashion.models.unified import UniFashion, load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--blocks", default="32,64,64", help="VAE block widths (3 = factor 4, 2 = factor 2)")
    args = ap.parse_args()
    torch.manual_seed(0)
    blocks = [int(b) for b in args.blocks.split(",")]
    model = UniFashion.from_config(load_config("quickstart", {"generator": {"vae_block_out_channels": blocks}}))
    vae = model.generator.vae.requires_grad_(True).train()
    train = catalog.load(f"{args.world}/catalog", split="train")
    val = catalog.load(f"{args.world}/catalog", split="val")[:64]
    opt = torch.optim.AdamW(vae.parameters(), args.lr, weight_decay=0.0)
    rng, start = np.random.default_rng(0), time.perf_counter()
    for _ in range(args.steps):
        pixels = model.generator_pixels([train[i].image.load() for i in rng.choice(len(train), args.batch, False)])
        posterior = vae.encode(pixels).latent_dist
        recon = vae.decode(posterior.sample() if args.sample else posterior.mode()).sample
        loss = F.l1_loss(recon, pixels) + F.mse_loss(recon, pixels) + 1e-6 * posterior.kl().mean() / pixels[0].numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval()
    with torch.no_grad():
        pixels = model.generator_pixels([p.image.load() for p in val])
        recon = vae.decode(vae.encode(pixels).latent_dist.mode()).sample
    arrays = ((recon.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).round().byte().numpy()
    real = ((pixels + 1) * 127.5).permute(0, 2, 3, 1).round().byte().numpy()
    requested = np.array([COLOURS[p.extra["attributes"]["colour"]] for p in val])
    print(f"{args.steps} steps in {time.perf_counter() - start:.0f} s, last loss {loss.item():.3f}; dominant colour = "
          f"requested: reconstructions {dominant_colour_match(arrays, requested, COLOURS):.3f}, "
          f"the real images {dominant_colour_match(real, requested, COLOURS):.3f}")


if __name__ == "__main__":
    main()
