"""Where a trained generator loses the requested colour: the metric's ceiling, the VAE, or the condition.

    .venv/bin/python scripts/generator_probe.py quickstart/model quickstart/world [--items 64]

On the first view of `--items` validation products, at the generator's image size, prints (JSON):
  colour_match_real      the dominant-colour test on the real images (the metric's ceiling)
  colour_match_vae       ... on their VAE reconstructions (what the latent space can carry)
  colour_match_text      ... on images generated from their detailed descriptions (the quickstart's test)
  colour_match_image     ... on images generated from the real images' queries
  condition_effect       mean |difference| (0-255) between generations from two different descriptions
                         on the same noise, against the mean |difference| between generations on two
                         different noises (near 0: the UNet ignores its condition)
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from unifashion.data.formats import catalog
from unifashion.data.vocabulary import COLOURS
from unifashion.evaluation.evaluate import first_view_per_product
from unifashion.evaluation.generation_metrics import dominant_colour_match
from unifashion.models.unified import UniFashion


def as_uint8(images) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB")) for im in images])  # (N, S, S, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("world")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25, help="sampler steps")
    args = parser.parse_args()

    model = UniFashion.from_pretrained(args.model)
    products = first_view_per_product(catalog.load(f"{args.world}/catalog", split="val"))[: args.items]
    images = [p.image.load().convert("RGB") for p in products]
    texts = [p.extra["detailed"] for p in products]
    requested = np.array([COLOURS[p.extra["attributes"]["colour"]] for p in products])
    score = lambda x: round(100.0 * dominant_colour_match(x, requested, COLOURS), 1)  # noqa: E731

    # 1. the real images and their VAE reconstructions, at the generator's size
    with torch.no_grad():
        pixels = model.generator_pixels(images)  # (N, 3, S, S) in [-1, 1]
        recon = model.generator.decode_latents(model.generator.encode_images(pixels))  # (N, 3, S, S)
    to_uint8 = lambda t: ((t / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    # 2. generations from words and from the real images' queries (same seed: the same starting noise)
    from_text = as_uint8(model.generate(texts=texts, steps=args.steps))
    from_image = as_uint8(model.generate(images=images, steps=args.steps))
    # 3. does the condition change the picture? the descriptions rolled by one, same noise; vs another noise
    rolled = as_uint8(model.generate(texts=texts[1:] + texts[:1], steps=args.steps))
    reseeded = as_uint8(model.generate(texts=texts, steps=args.steps, seed=1))
    diff = lambda a, b: round(float(np.abs(a.astype(np.float64) - b).mean()), 2)  # noqa: E731
    print(json.dumps({
        "items": len(products), "image_size": model.generator.config.image_size,
        "colour_match_real": score(to_uint8(pixels)), "colour_match_vae": score(to_uint8(recon)),
        "colour_match_text": score(from_text), "colour_match_image": score(from_image),
        "condition_effect": {"other_description_same_noise": diff(from_text, rolled),
                             "same_description_other_noise": diff(from_text, reseeded)},
    }, indent=2))


if __name__ == "__main__":
    main()
