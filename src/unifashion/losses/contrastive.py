"""Image-text contrastive loss (ITC), BLIP-2 style (paper §3.2; LAVIS blip2_qformer.py).

The image side is the 32 query embeddings Z_I, the text side the [CLS] embedding e_cls; an image's
similarity to a text is the best query's dot product (max over queries: `QFormer.similarity`). The loss is the symmetric
cross-entropy of image->text and text->image similarities divided by the learnable temperature.
Items that share a product id are all positives (soft targets spread uniformly over them, as
BLIP-2's `sim_targets` from image ids). Under torch.distributed every local item is contrasted
against the global batch (see `unifashion.losses.distributed`).

BLIP-2 trains ITC with label_smoothing=0.1; ours defaults to 0 (pass label_smoothing=0.1 for BLIP-2's).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unifashion.losses.distributed import gather_no_grad, gather_with_grad, world
from unifashion.models.qformer import QFormer

TEMPERATURE_RANGE = (0.001, 0.5)  # BLIP-2 clamps its learnable temperature to this range


def clamp_temperature(temperature: torch.Tensor | float, like: torch.Tensor | None = None) -> torch.Tensor:
    """The temperature clamped to TEMPERATURE_RANGE (functional: the stored parameter is untouched).

    Out of range, the clamp passes no gradient; BLIP-2 avoids a stuck temperature by clamping the
    parameter itself in place before each step: do that with `clamp_temperature_`.
    """
    t = torch.as_tensor(temperature)
    if like is not None:
        t = t.to(device=like.device)
    if t.numel() != 1:
        raise ValueError(f"temperature must be a scalar, got shape {tuple(t.shape)}")
    return t.reshape(()).clamp(*TEMPERATURE_RANGE)


@torch.no_grad()  # an in-place update of a parameter, outside autograd
def clamp_temperature_(temperature: torch.Tensor) -> None:
    """Clamp the temperature parameter in place (BLIP-2's `self.temp.clamp_(0.001, 0.5)`); call it
    before the forward pass of a step, not between a forward and its backward."""
    temperature.clamp_(*TEMPERATURE_RANGE)


def contrastive_targets(
    row_ids: torch.Tensor | None, col_ids: torch.Tensor | None, num_rows: int, num_cols: int, offset: int,
    device: torch.device,
) -> torch.Tensor:
    """(rows, cols) target distribution: row i's positive is column offset + i, or, with ids, every
    column with the same id (uniform over them)."""
    if row_ids is None:
        targets = torch.zeros(num_rows, num_cols, device=device)
        targets[torch.arange(num_rows, device=device), offset + torch.arange(num_rows, device=device)] = 1.0
        return targets
    positives = (row_ids[:, None] == col_ids[None, :]).float()  # (rows, cols); the diagonal is always in
    return positives / positives.sum(dim=1, keepdim=True)


def info_nce(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over rows of the cross-entropy between softmax(logits) and the target distribution."""
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[1]
    log_probs = F.log_softmax(logits.float(), dim=1)  # (rows, cols)
    return -(targets * log_probs).sum(dim=1).mean()


def _check_ids(ids: torch.Tensor | None, batch: int, name: str) -> None:
    if ids is not None and (ids.dim() != 1 or ids.shape[0] != batch):
        raise ValueError(f"{name} must be ({batch},), got {tuple(ids.shape)}")


class ImageTextContrastiveLoss(nn.Module):
    """ITC: forward(image_embeds (B, Q, E), text_embeds (B, E), temperature, product_ids=None) -> {"itc_loss"}.

    Both embeddings L2-normalised (QFormer's image_embeds / text_embeds); temperature is the model's
    learnable scalar, clamped to [0.001, 0.5] here.
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        temperature: torch.Tensor | float,
        product_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if image_embeds.dim() != 3 or text_embeds.dim() != 2 or image_embeds.shape[0] != text_embeds.shape[0] \
                or image_embeds.shape[-1] != text_embeds.shape[-1]:
            raise ValueError(f"ITC needs image embeds (B, Q, E) and text embeds (B, E) of one batch, "
                             f"got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}")
        b = image_embeds.shape[0]
        if b == 0:
            raise ValueError("ITC got an empty batch")
        _check_ids(product_ids, b, "product_ids")
        tau = clamp_temperature(temperature, like=image_embeds)
        rank, _ = world()
        image_all = gather_with_grad(image_embeds)  # (N, Q, E), N = world_size * B
        text_all = gather_with_grad(text_embeds)  # (N, E)
        sim_i2t = QFormer.similarity(image_embeds, text_all) / tau  # (B, N): local images vs all texts
        sim_t2i = QFormer.similarity(image_all, text_embeds).t() / tau  # (B, N): local texts vs all images
        ids_all = gather_no_grad(product_ids) if product_ids is not None else None
        targets = contrastive_targets(product_ids, ids_all, b, text_all.shape[0], rank * b, image_embeds.device)
        loss = (info_nce(sim_i2t, targets, self.label_smoothing) + info_nce(sim_t2i, targets, self.label_smoothing)) / 2
        return {"itc_loss": loss}
