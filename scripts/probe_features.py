"""Which frozen features a linear attribute probe should read (evaluation.evaluate.ImageProbes).

    .venv/bin/python scripts/probe_features.py MODEL WORLD [--train 1000] [--val 400] [--size 64]

Fits AttributeProbe (category, colour, pattern) on the training split's renders read at --size px and
prints its accuracy on held-out validation renders, for three feature sets: the frozen image encoder's
pooled tokens, the foreground colour histogram, and both concatenated.
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from unifashion.data.formats import catalog
from unifashion.evaluation.attributes import AttributeProbe, foreground_histogram
from unifashion.evaluation.model_scores import pooled_image_features
from unifashion.models.unified import UniFashion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("world")
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    model = UniFashion.from_pretrained(args.model)
    train = catalog.load(f"{args.world}/catalog", split="train")[: args.train]
    val = catalog.load(f"{args.world}/catalog", split="val")[: args.val]

    def labels(pairs):
        return {"category": [p.category for p in pairs], "colour": [p.extra["attributes"]["colour"] for p in pairs],
                "pattern": [p.extra["attributes"]["pattern"] for p in pairs]}

    def images(pairs):
        return [p.image.load().convert("RGB").resize((args.size, args.size), Image.Resampling.BICUBIC) for p in pairs]

    tr, va = images(train), images(val)
    tokens = pooled_image_features(model, tr), pooled_image_features(model, va)
    hist = (foreground_histogram(np.stack([np.asarray(i) for i in tr])),
            foreground_histogram(np.stack([np.asarray(i) for i in va])))
    both = np.hstack([tokens[0], hist[0]]), np.hstack([tokens[1], hist[1]])
    for name, (a, b) in {"encoder tokens": tokens, "foreground histogram": hist, "both": both}.items():
        for l2 in (1e-3, 1e-2):
            probe = AttributeProbe.fit(a, labels(train), l2=l2)
            scores = probe.accuracy(b, labels(val))
            print(f"{name:22s} l2={l2:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
