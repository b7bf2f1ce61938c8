"""Training: step time with the frozen-feature cache against re-running the frozen backbone.

    python benchmarks/training.py [--quick] [--model DIR] [--json OUT]

Phase-1a steps (forward, losses, backward, AdamW) on the same catalog batches, (a) with the feature
cache warm (the trainer's default: backbone tokens read from disk) and (b) with no cache (the backbone
runs on every batch). Two loss sets: ITC alone (the quickstart's phase 1a) and ITC + ITM (the paper's).
The two modes alternate, several rounds, the median kept. Target: (b) / (a) >= 3.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from common import (Report, RESULTS, add_model_argument, catalog_pairs, load_model, median, parser, run,
                    synthetic_world)


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

    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        cache = Path(tmp) / "feature_cache"
        for name, phase in (("phase1a ITC", QFormerPretraining(itm_weight=0.0)),
                            ("phase1a ITC+ITM", QFormerPretraining())):
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
        model.use_feature_cache(None)
    report.finish(args.json)


if __name__ == "__main__":
    run(main)
