"""Image-grounded text generation loss (ITG) through the LLM (paper §3.1.1, Eq. 6).

Next-token cross-entropy with transformers' convention: labels are aligned with the inputs (as
`Captioner.forward` returns them) and shifted here — the logits at position t predict the label at
t + 1. Positions labelled -100 (template, soft prompt, padding) are ignored; the loss is the mean
over supervised tokens of the whole batch. Only the supervised positions' logits go through
log-softmax (the (B, T, V) tensor over a 49k vocabulary is large; the answer is a small part of it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unifashion.models.captioner import IGNORE_INDEX


class CaptionLoss(nn.Module):
    """forward(logits (B, T, V), labels (B, T)) -> {"itg_loss"}."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if logits.dim() != 3 or labels.shape != logits.shape[:2]:
            raise ValueError(f"ITG needs logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} "
                             f"and {tuple(labels.shape)}")
        shift_logits = logits[:, :-1]  # (B, T-1, V): position t predicts token t + 1
        shift_labels = labels[:, 1:].to(logits.device)  # (B, T-1)
        keep = shift_labels != IGNORE_INDEX  # (B, T-1)
        if not keep.any():
            # nothing supervised (every answer masked out): a zero that keeps the graph connected
            return {"itg_loss": logits.sum() * 0.0}
        targets = shift_labels[keep]  # (n,)
        vocab = logits.shape[-1]
        if targets.min() < 0 or targets.max() >= vocab:
            raise ValueError(f"labels must be token ids in [0, {vocab}) or {IGNORE_INDEX}, "
                             f"got values in [{int(targets.min())}, {int(targets.max())}]")
        selected = shift_logits[keep].float()  # (n, V): only the supervised positions, in fp32
        return {"itg_loss": F.cross_entropy(selected, targets)}
