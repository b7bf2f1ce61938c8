"""Training: step time with the frozen-feature cache against re-running the frozen backbone.

    python benchmarks/training.py [--quick] [--model DIR] [--json OUT]

Phase-1a steps (forward, losses, backward, AdamW) on the same catalog batches, (a) with the feature
cache warm (the trainer's default: backbone tokens read from disk) and (b) with no cache (the backbone
runs on every batch). Two loss sets: ITC alone (the quickstart's phase 1a) and ITC + ITM (the paper's;
not in --quick).
The two modes alternate, several rounds, the median kept. Target: (b) / (a) >= 3.

Beside the timings it counts floating-point operations (torch's FlopCounterMode) per training
example: the backbone's forward against the Q-Former's forward and backward, for this model and for
the paper's architecture (EVA ViT-g/14 on the meta device: shapes only, + the 12-layer BLIP-2
Q-Former with random weights): (backbone + Q-Former) / Q-Former is the speed-up a FLOP-bound machine would see.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from common import (Report, RESULTS, add_model_argument, catalog_pairs, count_flops, load_model, median,
                    paper_encoder_and_qformer, parser, run, synthetic_world)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    add_model_argument(p)
    args = p.parse_args()
    batch_size = 16 if args.quick else 32
    steps = 2 if args.quick else 4  # per round
    rounds = 2 if args.quick else 4

    from unifashion.data.training_sets import ImageTextPairs, collate_items
    from unifashion.training.phases import QFormerPretraining

    model, model_name, _ = load_model(args.model)
    world = synthetic_world(RESULTS / "worlds", 40 if args.quick else 120)
    pairs = catalog_pairs(world, batch_size * steps)
    dataset = ImageTextPairs(pairs)
    # images decoded once, in memory: neither mode pays for reading files
    batches = [collate_items([dataset[i] for i in range(s, s + batch_size)])
               for s in range(0, batch_size * steps, batch_size)]
    report = Report("training", args.quick, setup={
        "model": model_name, "backbone": model.image_encoder.config.backbone,
        "image_size": model.image_encoder.config.image_size, "batch_size": batch_size,
        "steps_per_round": steps, "rounds": rounds})

    s = model.image_encoder.image_size
    backbone_flops = count_flops(lambda: model.image_encoder(torch.zeros(1, 3, s, s)))  # one image's tokens
    flops = {}

    def step_backward(phase, batch) -> None:
        losses = phase.losses(model, batch)
        sum(phase.loss_weights[k] * v for k, v in losses.items()).backward()

    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        cache = Path(tmp) / "feature_cache"
        # quick: ITC alone (the quickstart's phase 1a); ITM quadruples the step's Q-Former work
        loss_sets = [("phase1a ITC", QFormerPretraining(itm_weight=0.0))]
        if not args.quick:
            loss_sets.append(("phase1a ITC+ITM", QFormerPretraining()))
        for name, phase in loss_sets:
            model.train()
            optimizer = torch.optim.AdamW(phase.parameter_groups(model))

            def train(use_cache: bool) -> float:
                model.use_feature_cache(cache if use_cache else None)
                start = time.perf_counter()
                for batch in batches:
                    losses = phase.losses(model, batch)
                    loss = sum(phase.loss_weights[k] * v for k, v in losses.items())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                return (time.perf_counter() - start) / len(batches)

            train(True)  # fills the cache (and warms up): the trainer's first epoch
            with_cache, without = [], []
            for _ in range(rounds):
                with_cache.append(train(True))
                without.append(train(False))
            ratio = median(without) / median(with_cache)
            report.row(losses=name, step_s_cached=median(with_cache), step_s_backbone=median(without),
                       speedup=ratio)
            report.target(f"{name}: step time backbone / cached", ratio, 3.0)
            model.use_feature_cache(cache)  # the Q-Former's share alone: tokens from the cache
            step_flops = count_flops(lambda: step_backward(phase, batches[0])) / batch_size
            flops[name] = (backbone_flops, step_flops)
        model.use_feature_cache(None)

    for name, counts in paper_flops_per_example().items():
        flops[f"paper {name}"] = counts
    for name, (backbone, step) in flops.items():
        report.note(f"{name}: {backbone / 1e9:.3g} GFLOP backbone forward, {step / 1e9:.3g} GFLOP Q-Former "
                    f"forward + backward per example (counted): FLOP-bound speed-up {(backbone + step) / step:.2f}x")
        report.setup[f"flops {name}"] = {"backbone_gflop": backbone / 1e9, "qformer_step_gflop": step / 1e9,
                                         "flop_bound_speedup": (backbone + step) / step}
    report.finish(args.json)


def paper_flops_per_example(text_length: int = 32) -> dict[str, tuple[int, int]]:
    """(ViT-g/14 forward, BLIP-2 Q-Former forward + backward) FLOPs for one image-text pair, for ITC and
    ITC+ITM (the ViT on the meta device, the Q-Former with random weights, built once). ITM adds the
    multimodal pass over one positive and two hard negatives, as phase 1a does."""
    encoder, pixels, qformer, tokens = paper_encoder_and_qformer()
    ids = torch.zeros(1, text_length, dtype=torch.long)  # (1, L)
    mask = torch.ones(1, text_length, dtype=torch.long)  # (1, L)

    def step(itm: bool) -> None:
        loss = qformer.image_features(tokens).image_embeds.sum() + qformer.text_features(ids, mask).text_embeds.sum()
        if itm:
            loss = loss + qformer.itm_logits(tokens.expand(3, -1, -1), ids.expand(3, -1), mask.expand(3, -1)).sum()
        loss.backward()

    backbone = count_flops(lambda: encoder(pixels))
    return {"phase1a ITC": (backbone, count_flops(lambda: step(False))),
            "phase1a ITC+ITM": (backbone, count_flops(lambda: step(True)))}


if __name__ == "__main__":
    run(main)
