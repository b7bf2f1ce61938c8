"""How much garment colour the frozen image tokens carry: an attention-pooling probe per token kind.

For each `image_encoder.tokens` setting, the catalog's train images' tokens train a small probe (a
linear projection, 4 learned pooling queries, a linear classifier over the colours) and the
validation images' colour accuracy is printed. Chance is 1 / (number of colours).

    .venv/bin/unifashion synth --out world --products 1000
    .venv/bin/python scripts/colour_probe.py world [--steps 400]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from unifashion.models.image_encoder import FrozenImageEncoder, ImageEncoderConfig


def tokens_of(encoder: FrozenImageEncoder, paths: list[Path], batch_size: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([encoder(encoder.preprocess([Image.open(p) for p in paths[i:i + batch_size]]))
                          for i in range(0, len(paths), batch_size)])  # (N, T, D)


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, classes: int, steps: int) -> float:
    torch.manual_seed(0)
    mean, std = x[train].mean((0, 1)), x[train].std((0, 1)) + 1e-6
    x = (x - mean) / std
    proj, head = torch.nn.Linear(x.shape[-1], 128), torch.nn.Linear(4 * 128, classes)
    pool = torch.nn.Parameter(torch.randn(4, 128) * 0.1)
    params = [*proj.parameters(), *head.parameters(), pool]
    opt = torch.optim.Adam(params, lr=3e-3, weight_decay=1e-4)

    def logits(t: torch.Tensor) -> torch.Tensor:
        h = proj(t)  # (N, T, 128)
        attn = torch.softmax(torch.einsum("qd,ntd->nqt", pool, h) / 128 ** 0.5, dim=-1)  # (N, 4, T)
        return head(torch.einsum("nqt,ntd->nqd", attn, h).flatten(1))  # (N, classes)

    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(logits(x[train]), y[train]).backward()
        opt.step()
    with torch.no_grad():
        return (logits(x[~train]).argmax(1) == y[~train]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", type=Path, help="a synthetic world (unifashion synth)")
    parser.add_argument("--steps", type=int, default=400, help="probe training steps")
    args = parser.parse_args()
    root = args.world / "catalog"
    rows = [json.loads(line) for line in (root / "catalog.jsonl").read_text().splitlines() if line.strip()]
    colours = sorted({r["attributes"]["colour"] for r in rows})
    y = torch.tensor([colours.index(r["attributes"]["colour"]) for r in rows])
    train = torch.tensor([r["split"] == "train" for r in rows])
    paths = [root / r["image"] for r in rows]
    print(f"{len(rows)} images, {len(colours)} colours (chance {100 / len(colours):.1f}%)")
    for kind in ("last", "multiscale"):
        encoder = FrozenImageEncoder(ImageEncoderConfig(tokens=kind))
        x = tokens_of(encoder, paths)
        acc = probe_accuracy(x, y, train, len(colours), args.steps)
        print(f"tokens {kind:10s} {tuple(x.shape[1:])}: validation colour accuracy {100 * acc:.1f}%", flush=True)


if __name__ == "__main__":
    main()
