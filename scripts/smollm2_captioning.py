"""What the embedded configuration's captioner (SmolLM2-135M-Instruct + LoRA r16) learns on a synthetic world.

The quickstart trains a small captioner from scratch because a SmolLM2 ITG step costs ~20 s on 2 cores;
this measures the embedded captioner on the same world with the same protocol, so the README can report both:
  1. phase 1a with the `embedded` config (the same image encoder and Q-Former as the `quickstart` config,
     and the quickstart's phase-1a settings: ITC only, lr 2e-4)
  2. phase 1b, ITG only (train_diffusion=False: the 64 px generator is not what is measured here)
  3. caption metrics on the validation split (the quickstart's caption protocol: 100 products, first view)

    .venv/bin/python scripts/smollm2_captioning.py quickstart/world runs/smollm2 [--phase1b-steps 100]

Writes OUT/captioning.json (metrics, seconds per phase, settings) and prints it.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from unifashion.evaluation.evaluate import EvalConfig, evaluate_world
from unifashion.models.model_config import load_config
from unifashion.models.unified import UniFashion
from unifashion.recipes.quickstart import QuickstartConfig
from unifashion.training.phases import GenerativeAdaptation
from unifashion.training.run_phase import run_phase
from unifashion.training.trainer import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("world", type=Path, help="a synthetic world (e.g. the quickstart's OUT/world)")
    parser.add_argument("out", type=Path, help="folder for the two runs and captioning.json")
    parser.add_argument("--phase1a-steps", type=int, default=QuickstartConfig.phase1a_steps)
    parser.add_argument("--phase1b-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=QuickstartConfig.batch_size)
    parser.add_argument("--cache", type=Path, default=None, help="frozen-feature cache to share (e.g. the quickstart's)")
    args = parser.parse_args()

    quick = QuickstartConfig()
    cache = args.cache or args.out / "feature_cache"
    seconds: dict[str, float] = {}
    # 1-2. the two phases the captioner needs, each from the previous one's saved model
    runs = (("phase1a", quick.phase1a, args.phase1a_steps),
            ("phase1b", GenerativeAdaptation(train_diffusion=False), args.phase1b_steps))
    previous = None
    for name, phase, steps in runs:
        t0 = time.perf_counter()
        config = TrainConfig(steps=steps, batch_size=args.batch_size, seed=quick.seed, checkpoint_every=steps,
                             log_every=max(1, steps // 20))
        run_phase(phase, args.world, args.out / name, config, init=previous,
                  model_config=load_config("embedded"), cache=cache)
        seconds[name] = round(time.perf_counter() - t0, 1)
        previous = args.out / name / "model"
    # 3. the quickstart's caption protocol on the validation split
    t0 = time.perf_counter()
    evaluation = EvalConfig(tasks=("cap",))
    metrics = evaluate_world(UniFashion.from_pretrained(previous), args.world, evaluation)
    seconds["evaluate"] = round(time.perf_counter() - t0, 1)
    rows = [json.loads(line) for line in (args.out / "phase1b" / "metrics.jsonl").read_text().splitlines()]
    itg = [row["itg_loss"] for row in rows if "itg_loss" in row]
    summary = {"metrics": metrics, "seconds": seconds, "itg_loss_first_last": [itg[0], itg[-1]] if itg else None,
               "phase1a_steps": args.phase1a_steps, "phase1b_steps": args.phase1b_steps,
               "batch_size": args.batch_size, "evaluation": asdict(evaluation), "model": str(previous)}
    (args.out / "captioning.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
