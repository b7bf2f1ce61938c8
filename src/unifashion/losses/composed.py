"""Composed image retrieval loss, phase 2 (paper §3.3): L_cir = ITC(e_cls, Z_T) + ITC(e_cls, Z_C) + ITM(t, Z_T).

- cir_image_loss: InfoNCE of the composed query e_cls (reference image + modification text) against the
  target images' query embeddings Z_T (similarity = max over the target's queries, as ITC).
- cir_caption_loss: InfoNCE of e_cls against the target captions' embeddings Z_C.
- cir_itm_loss: ITM between the modification text t and the target image, with in-batch hard negatives
  drawn from the composed-query-vs-target similarities (only when the ITM inputs are given).

The two InfoNCE terms are one-directional (query -> gallery), as CLIP4Cir / SPRC train composed
retrieval: the gallery is never used as a query. Across processes every local query is contrasted
against the global batch of targets (`unifashion.losses.distributed`). With target_ids (product ids)
every target of the same product is a positive.
"""
from __future__ import annotations

import torch
from torch import nn

from unifashion.losses.contrastive import (
    clamp_temperature,
    contrastive_targets,
    info_nce,
)
from unifashion.losses.distributed import gather_no_grad, gather_with_grad, world
from unifashion.losses.matching import ImageTextMatchingLoss, ItmLogitsFn
from unifashion.models.qformer import QFormer


class ComposedRetrievalLoss(nn.Module):
    """forward(composed_embeds (B, E), target_image_embeds (B, Q, E), target_caption_embeds (B, E),
    temperature, itm_logits_fn=None, target_image_tokens=None, mod_ids=None, mod_mask=None,
    target_ids=None, generator=None) -> {"cir_image_loss", "cir_caption_loss"[, "cir_itm_loss"]}."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.itm = ImageTextMatchingLoss()

    def forward(
        self,
        composed_embeds: torch.Tensor,
        target_image_embeds: torch.Tensor,
        target_caption_embeds: torch.Tensor,
        temperature: torch.Tensor | float,
        itm_logits_fn: ItmLogitsFn | None = None,
        target_image_tokens: torch.Tensor | None = None,
        mod_ids: torch.Tensor | None = None,
        mod_mask: torch.Tensor | None = None,
        target_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        b = composed_embeds.shape[0]
        if composed_embeds.dim() != 2 or target_image_embeds.dim() != 3 or target_caption_embeds.dim() != 2 \
                or target_image_embeds.shape[0] != b or target_caption_embeds.shape[0] != b \
                or not composed_embeds.shape[-1] == target_image_embeds.shape[-1] == target_caption_embeds.shape[-1]:
            raise ValueError(f"CIR needs composed (B, E), target image (B, Q, E) and target caption (B, E) embeds "
                             f"of one batch, got {tuple(composed_embeds.shape)}, {tuple(target_image_embeds.shape)}, "
                             f"{tuple(target_caption_embeds.shape)}")
        if b == 0:
            raise ValueError("CIR got an empty batch")
        if target_ids is not None and target_ids.shape != (b,):
            raise ValueError(f"target_ids must be ({b},), got {tuple(target_ids.shape)}")
        itm_inputs = (itm_logits_fn, target_image_tokens, mod_ids, mod_mask)
        if any(x is not None for x in itm_inputs) and not all(x is not None for x in itm_inputs):
            raise ValueError("cir_itm_loss needs all of itm_logits_fn, target_image_tokens, mod_ids and mod_mask")

        tau = clamp_temperature(temperature, like=composed_embeds)
        rank, _ = world()
        images_all = gather_with_grad(target_image_embeds)  # (N, Q, E)
        captions_all = gather_with_grad(target_caption_embeds)  # (N, E)
        ids_all = gather_no_grad(target_ids) if target_ids is not None else None
        targets = contrastive_targets(target_ids, ids_all, b, images_all.shape[0], rank * b, composed_embeds.device)
        # QFormer.similarity(images, queries) is (N, B): transpose to queries x gallery
        sim_image = QFormer.similarity(images_all, composed_embeds).t() / tau  # (B, N)
        sim_caption = composed_embeds @ captions_all.t() / tau  # (B, N)
        out = {
            "cir_image_loss": info_nce(sim_image, targets, self.label_smoothing),
            "cir_caption_loss": info_nce(sim_caption, targets, self.label_smoothing),
        }
        if itm_logits_fn is not None:
            # local batch: the modification texts vs the local target images (negatives drawn in-batch)
            local = sim_image[:, rank * b:(rank + 1) * b].detach()  # (B, B) query/text i vs target image j
            out["cir_itm_loss"] = self.itm(itm_logits_fn, target_image_tokens, mod_ids, mod_mask,
                                           sim_i2t=local.t(), sim_t2i=local, product_ids=target_ids,
                                           generator=generator)["itm_loss"]
        return out
