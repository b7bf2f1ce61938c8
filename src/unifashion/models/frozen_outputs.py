"""In-memory rows of what a frozen part computes per input, so that a phase computes them once.

A phase that keeps a part frozen (phase 1b: the Q-Former and the VAE encoder; phase 2 and try-on: the
VAE encoder, the try-on inputs) would otherwise recompute the same outputs for the same image every
epoch. `FrozenOutputs.rows` serves a row computed before only while the part that produces it has no
trainable parameter, and computes it in eval mode (no dropout), so a cached row equals a fresh one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class FrozenOutputs:
    """rows(name, module, keys, compute) -> (B, ...) tensor; `compute(indices)` returns the rows of
    keys[i] for i in indices, stacked. Counts `hits` (rows served from memory) and `misses`."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self._tables.clear()

    def rows(self, name: str, module: nn.Module, keys: Sequence[str],
             compute: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        if any(p.requires_grad for p in module.parameters()):  # a part that trains: never cached
            self._tables.pop(name, None)
            return compute(list(range(len(keys))))
        table = self._tables.setdefault(name, {})
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in table and key not in first:
                first[key] = i
        if first:
            was_training = module.training
            module.eval()  # frozen means deterministic: no dropout in what is stored
            try:
                with torch.no_grad():
                    fresh = compute(list(first.values()))  # (b, ...)
            finally:
                module.train(was_training)
            for key, row in zip(first, fresh):
                table[key] = row.detach()
        self.misses += len(first)
        self.hits += len(keys) - len(first)
        return torch.stack([table[key] for key in keys])  # (B, ...)
