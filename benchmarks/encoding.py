"""Encoding: images/s of `encode_image` end to end against the raw frozen backbone's forward.

    python benchmarks/encoding.py [--quick] [--model DIR] [--json OUT]

On the same batches of in-memory catalog images: (a) the frozen backbone's forward on already
preprocessed pixels (the floor any encoder built on it pays), (b) `encode_image` end to end (resize
and normalise, backbone, Q-Former) — what indexing and image search run. The two are timed in
alternation, several rounds, and the median round kept. Target: (b) >= 0.7 x (a).

Beside the timings it counts the floating-point operations per image of the backbone and of the
Q-Former (torch's FlopCounterMode) for this model and for the paper's architecture (EVA ViT-g/14 at
224 px on the meta device: shapes only, + the 12-layer BLIP-2 Q-Former with random weights):
backbone / (backbone + Q-Former) is the ratio a FLOP-bound machine would reach.
"""
from __future__ import annotations

import torch

from common import (Report, RESULTS, add_model_argument, catalog_pairs, count_flops, load_model, median,
                    paper_encoder_and_qformer, parser, run, seconds, synthetic_world)


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

    for scale, (backbone_flops, qformer_flops) in (("this model", flops_per_image(model)),
                                                   ("paper (ViT-g/14 + BLIP-2 Q-Former)", paper_flops_per_image())):
        report.note(f"{scale}: {backbone_flops / 1e9:.3g} GFLOP backbone + {qformer_flops / 1e9:.3g} GFLOP Q-Former "
                    f"per image (counted): FLOP-bound ratio {backbone_flops / (backbone_flops + qformer_flops):.3f}")
        report.setup[f"flops_{'model' if scale == 'this model' else 'paper'}"] = {
            "backbone_gflop": backbone_flops / 1e9, "qformer_gflop": qformer_flops / 1e9,
            "flop_bound_ratio": backbone_flops / (backbone_flops + qformer_flops)}

    for b in batch_sizes:
        report.target(f"encode_image / backbone images/s at batch {b}", ratio_at[b], 0.7)
    report.finish(args.json)


def flops_per_image(model) -> tuple[int, int]:
    """(backbone, Q-Former) FLOPs of encode_image for one image of this model."""
    s = model.image_encoder.image_size
    pixels = torch.zeros(1, 3, s, s)  # (1, 3, S, S)
    tokens = model.image_encoder(pixels)  # (1, N, D)
    return (count_flops(lambda: model.image_encoder(pixels)),
            count_flops(lambda: model.qformer.image_features(tokens)))


def paper_flops_per_image() -> tuple[int, int]:
    """The same count for the paper's architecture (ViT-g/14 + BLIP-2 Q-Former)."""
    encoder, pixels, qformer, tokens = paper_encoder_and_qformer()
    qformer.eval()
    return count_flops(lambda: encoder(pixels)), count_flops(lambda: qformer.image_features(tokens))


if __name__ == "__main__":
    run(main)
