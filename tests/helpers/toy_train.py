"""A toy phase for the trainer tests, importable by the tests and runnable as a training script
(in a subprocess, under SIGKILL, or under `accelerate launch`).

    python tests/helpers/toy_train.py OUT --steps 20 [--resume] [--checkpoint-every 5] [--sleep 0.02]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class ToyModel(nn.Module):
    """A frozen random projection, then a trainable MLP with dropout (dropout exercises the torch RNG)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        self.embed = nn.Linear(8, 16)  # frozen
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(x)).squeeze(-1)  # (B,)


class ToyData(Dataset):
    """y = sin(x . w): a smooth regression target; items carry their index so tests see the data order."""

    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(99)
        self.x = torch.randn(n, 8, generator=g)  # (N, 8)
        w = torch.randn(8, generator=g)
        self.y = torch.sin(self.x @ w)  # (N,)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i], "index": i}


class ToyPhase:
    """Trains the MLP only; two loss terms; uses python, numpy and torch randomness."""

    name = "toy"

    def __init__(self, lr: float = 1e-2, crash_on_call: int | None = None, sleep: float = 0.0,
                 nan_on_call: int | None = None) -> None:
        self.loss_weights = {"mse_loss": 1.0, "l1_loss": 0.5}
        self.lr = lr
        self.seen: list[list[int]] = []  # batch indices in the order losses() saw them
        self.calls = 0
        self.crash_on_call = crash_on_call  # raise RuntimeError on this call (1-based): a simulated crash
        self.nan_on_call = nan_on_call
        self.sleep = sleep

    def parameter_groups(self, model: ToyModel) -> list[dict]:
        model.requires_grad_(False)
        model.mlp.requires_grad_(True)
        decay = [p for n, p in model.mlp.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in model.mlp.named_parameters() if n.endswith("bias")]
        return [{"params": decay, "lr": self.lr}, {"params": no_decay, "lr": self.lr, "weight_decay": 0.0}]

    def losses(self, model: ToyModel, batch: dict) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.crash_on_call == self.calls:
            raise RuntimeError("simulated crash")
        if self.sleep:
            time.sleep(self.sleep)
        self.seen.append(batch["index"].tolist())
        jitter = 0.01 * random.random() + 0.01 * float(np.random.rand())  # python + numpy RNG
        pred = model(batch["x"] + jitter)  # (B,)
        mse = ((pred - batch["y"]) ** 2).mean()
        if self.nan_on_call == self.calls:
            mse = mse * float("nan")
        return {"mse_loss": mse, "l1_loss": (pred - batch["y"]).abs().mean(), "note": torch.tensor(1.0)}


def main(argv: list[str] | None = None) -> None:
    from unifashion.training import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=7)
    ap.add_argument("--grad-accumulation", type=int, default=2)
    ap.add_argument("--checkpoint-every", type=int, default=5)
    ap.add_argument("--log-every", type=int, default=3)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--crash-on-call", type=int, default=None)  # a simulated crash in losses()
    ap.add_argument("--seen", type=Path, default=None)  # write data order + final weights here, per rank
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accumulation=args.grad_accumulation,
                         checkpoint_every=args.checkpoint_every, log_every=args.log_every, keep_checkpoints=2,
                         warmup_ratio=0.1)
    phase = ToyPhase(sleep=args.sleep, crash_on_call=args.crash_on_call)
    model = ToyModel()
    summary = train(model, phase, ToyData(), config, Path(args.out), resume=args.resume, progress=False)
    if args.seen is not None:
        import os

        from safetensors.torch import save_file

        rank = int(os.environ.get("RANK", "0"))
        Path(f"{args.seen}.{rank}").write_text(json.dumps(phase.seen))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{args.seen}.{rank}.safetensors")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
