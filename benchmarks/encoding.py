"""Encoding: images/s of `encode_image` end to end against the raw frozen backbone's forward.

    python benchmarks/encoding.py [--quick] [--model DIR] [--json OUT]

On the same batches of in-memory catalog images: (a) the frozen backbone's forward on already
preprocessed pixels (the floor any encoder built on it pays), (b) `encode_image` end to end (resize
and normalise, backbone, Q-Former) — what indexing and image search run. The two are timed in
alternation, several rounds, and the median round kept. Target: (b) >= 0.7 x (a).
"""
from __future__ import annotations

import torch

from common import Report, add_model_argument, catalog_pairs, load_model, median, parser, run, seconds, synthetic_world, RESULTS


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    args = p.parse_args()
    batch_sizes = (1, 16) if args.quick else (1, 8, 32, 64)
    images_per_size = 32 if args.quick else 128
    rounds = 3 if args.quick else 5

    model, model_name, _ = load_model(args.model)
    model.use_feature_cache(None)
    world = synthetic_world(RESULTS / "worlds", 40 if args.quick else 120)
    images = [pair.image.load().convert("RGB") for pair in catalog_pairs(world, images_per_size)]
    report = Report("encoding", args.quick, setup={
        "model": model_name, "backbone": model.image_encoder.config.backbone,
        "image_size": model.image_encoder.config.image_size, "images": len(images), "rounds": rounds,
        "torch_threads": torch.get_num_threads()})

    ratio_at = {}
    for b in batch_sizes:
        batches = [images[i:i + b] for i in range(0, len(images), b)]
        pixels = [model.image_encoder.preprocess(batch) for batch in batches]  # (b, 3, S, S) each

        def backbone() -> None:
            with torch.inference_mode():
                for x in pixels:
                    model.image_encoder(x)  # (b, N, D)

        def end_to_end() -> None:
            with torch.inference_mode():
                for batch in batches:
                    model.encode_image(batch)  # (b, 32, E) query embeddings

        t_backbone, t_ours = [], []
        backbone(), end_to_end()  # warm-up: allocator, kernels
        for _ in range(rounds):  # alternate, so drift hits both alike
            t_backbone += seconds(backbone, repeat=1, warmup=0)
            t_ours += seconds(end_to_end, repeat=1, warmup=0)
        backbone_ips, ours_ips = len(images) / median(t_backbone), len(images) / median(t_ours)
        ratio_at[b] = ours_ips / backbone_ips
        report.row(batch=b, backbone_images_per_s=backbone_ips, encode_image_images_per_s=ours_ips,
                   ratio=ratio_at[b])

    for b in batch_sizes:
        report.target(f"encode_image / backbone images/s at batch {b}", ratio_at[b], 0.7)
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
