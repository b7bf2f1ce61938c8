"""What an exact resume must restore besides weights and optimizer: RNG states and the data position.

- `EpochBatches`: the batches of one epoch, a pure function of (seed, epoch, rank); it can start at
  any batch index without touching the batches before it (resume skips at index level, nothing is
  loaded or collated for the skipped batches).
- `capture_rng` / `restore_rng`: python, numpy, torch CPU and CUDA generator states as tensors plus
  JSON metadata, so that they fit a safetensors file (no pickle).
- `TrainerState`: the counters written into every checkpoint's manifest.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import Sampler

from unifashion.errors import DataError

# ---- data order ------------------------------------------------------------------------------


def batches_per_epoch(dataset_size: int, batch_size: int, num_processes: int = 1) -> int:
    """Full global batches in one epoch (the last incomplete one is dropped, so every rank gets the same count)."""
    per_step = batch_size * num_processes
    n = dataset_size // per_step
    if n == 0:
        raise DataError(f"the dataset has {dataset_size} items, fewer than one batch of {batch_size} x "
                        f"{num_processes} process(es)")
    return n


def epoch_permutation(dataset_size: int, seed: int, epoch: int) -> np.ndarray:
    """The dataset order of `epoch`: identical on every rank and every run with the same seed."""
    return np.random.default_rng([seed, epoch]).permutation(dataset_size)  # (N,)


class EpochBatches(Sampler[list[int]]):
    """Batch sampler for one epoch, from batch `start` on.

    Global batch k of the epoch holds permutation[k*B*W:(k+1)*B*W]; rank r takes its slice
    [r*B:(r+1)*B] (B = per-process batch size, W = processes). Resuming at batch k yields exactly the
    batches an uninterrupted run would have seen next.
    """

    def __init__(self, dataset_size: int, batch_size: int, *, seed: int, epoch: int, start: int = 0,
                 num_processes: int = 1, rank: int = 0):
        self.batch_size = batch_size
        self.num_batches = batches_per_epoch(dataset_size, batch_size, num_processes)
        if not 0 <= start <= self.num_batches:
            raise ValueError(f"start batch {start} is outside the epoch's {self.num_batches} batches")
        self.start = start
        self.rank = rank
        self.num_processes = num_processes
        self.order = epoch_permutation(dataset_size, seed, epoch)

    def __iter__(self):
        global_batch = self.batch_size * self.num_processes
        for k in range(self.start, self.num_batches):
            offset = k * global_batch + self.rank * self.batch_size
            yield self.order[offset:offset + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.num_batches - self.start


# ---- random number generators ----------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) describing every global RNG this process uses."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state()  # ('MT19937', keys (624,) uint32, pos, has_gauss, cached_gaussian)
    tensors = {
        "python": torch.tensor(mt_state, dtype=torch.int64),  # (625,)
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),  # (624,)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    meta = {
        "python": json.dumps({"version": version, "gauss": gauss}),
        "numpy": json.dumps({"kind": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                             "cached_gaussian": float(np_state[4])}),
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    python = json.loads(meta["python"])
    random.setstate((python["version"], tuple(int(x) for x in tensors["python"].tolist()), python["gauss"]))
    npm = json.loads(meta["numpy"])
    np.random.set_state((npm["kind"], tensors["numpy"].numpy().astype(np.uint32), npm["pos"], npm["has_gauss"],
                         npm["cached_gaussian"]))
    torch.set_rng_state(tensors["torch"])
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][:torch.cuda.device_count()])


# ---- counters --------------------------------------------------------------------------------


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch
    batch: int = 0  # micro-batches of `epoch` already consumed (by every rank)
    elapsed: float = 0.0  # training seconds over all runs so far
    window_sums: dict[str, float] = field(default_factory=dict)  # per loss term: sum of step means since the last log
    window_steps: int = 0  # optimizer steps in the current log window

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainerState":
        return cls(step=int(data["step"]), epoch=int(data["epoch"]), batch=int(data["batch"]),
                   elapsed=float(data["elapsed"]), window_sums={k: float(v) for k, v in data["window_sums"].items()},
                   window_steps=int(data["window_steps"]))
