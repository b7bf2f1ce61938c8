"""Image-text matching loss (ITM) with hard negatives drawn from the ITC similarities (BLIP-2; LAVIS
blip2_qformer.py).

For every text a negative image is drawn with probability softmax(sim_t2i[text]) over the images,
and for every image a negative text with probability softmax(sim_i2t[image]) over the texts; the
item itself and every item with the same product id have probability 0. The ITM head then
classifies B positive pairs, B (text, negative image) pairs and B (image, negative text) pairs:
labels 1, 0, 0. LAVIS draws negatives from the batch gathered across processes; ours samples them
within the local batch (what single-process training does anyway), so the ITM pass never needs
other processes' image tokens.

Pass ITC *logits* as the similarities: similarity / temperature, detached — the temperature sets
how hard the negatives are (raw cosine similarities give nearly uniform draws).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ItmLogitsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens, ids, mask) -> (B', 2)


@dataclass
class ItmBatch:
    image_tokens: torch.Tensor  # (3B, N, D) the B images, then the negative image drawn for each text, then the images
    input_ids: torch.Tensor  # (3B, L) the B texts, then the texts again, then the negative text drawn for each image
    attention_mask: torch.Tensor  # (3B, L)
    labels: torch.Tensor  # (3B,) long: B ones, then 2B zeros
    negative_image: torch.Tensor  # (B,) long: index of the negative image drawn for each text
    negative_text: torch.Tensor  # (B,) long: index of the negative text drawn for each image


def negative_weights(sim: torch.Tensor, product_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, B) sampling weights from row-wise ITC logits: softmax over the allowed columns, 0 on the
    diagonal and on same-product columns; a row with no allowed column is all zeros."""
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarities must be a square (B, B) matrix, got {tuple(sim.shape)}")
    b = sim.shape[0]
    sim = sim.detach().float()
    if product_ids is not None:
        if product_ids.shape != (b,):
            raise ValueError(f"product_ids must be ({b},), got {tuple(product_ids.shape)}")
        same = product_ids[:, None].to(sim.device) == product_ids[None, :].to(sim.device)  # (B, B)
    else:
        same = torch.eye(b, dtype=torch.bool, device=sim.device)
    weights = sim.masked_fill(same, float("-inf")).softmax(dim=1)  # (B, B); NaN rows where all are masked
    allowed = (~same).any(dim=1, keepdim=True)  # (B, 1)
    return torch.where(allowed, weights, torch.zeros_like(weights))


def sample_negatives(
    sim: torch.Tensor, product_ids: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B,) index of one negative column per row, drawn ∝ negative_weights; -1 where none exists."""
    weights = negative_weights(sim, product_ids)  # (B, B)
    has = weights.sum(dim=1) > 0  # (B,)
    device = weights.device
    if generator is not None:
        weights = weights.to(generator.device)
    safe = torch.where(has.to(weights.device)[:, None], weights, torch.ones_like(weights))  # multinomial needs mass
    idx = torch.multinomial(safe, 1, generator=generator).squeeze(1).to(device)  # (B,)
    return torch.where(has, idx, torch.full_like(idx, -1))


class ImageTextMatchingLoss(nn.Module):
    """ITM: forward(itm_logits_fn, image_tokens, input_ids, attention_mask, sim_i2t, sim_t2i, product_ids,
    generator) -> {"itm_loss"}; itm_logits_fn is e.g. `qformer.itm_logits`."""

    @staticmethod
    def build_batch(
        image_tokens: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sim_i2t: torch.Tensor,
        sim_t2i: torch.Tensor | None = None,
        product_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ItmBatch:
        """The 3B pairs and their labels (LAVIS order)."""
        b = image_tokens.shape[0]
        if image_tokens.dim() < 2 or input_ids.dim() != 2 or attention_mask.shape != input_ids.shape \
                or input_ids.shape[0] != b:
            raise ValueError(f"ITM needs image tokens (B, N, D), input_ids and attention_mask (B, L) of one batch, "
                             f"got {tuple(image_tokens.shape)}, {tuple(input_ids.shape)}, "
                             f"{tuple(attention_mask.shape)}")
        if b < 2:
            raise ValueError(f"ITM needs at least 2 items per batch to draw hard negatives, got batch size {b}")
        sim_t2i = sim_i2t.t() if sim_t2i is None else sim_t2i
        for name, s in (("sim_i2t", sim_i2t), ("sim_t2i", sim_t2i)):
            if s.shape != (b, b):
                raise ValueError(f"{name} must be ({b}, {b}) (the local batch), got {tuple(s.shape)}")
        with torch.no_grad():
            neg_image = sample_negatives(sim_t2i, product_ids, generator)  # (B,) per text
            neg_text = sample_negatives(sim_i2t, product_ids, generator)  # (B,) per image
        # same-product is an equivalence: an item without an allowed negative means every item is one product
        if (neg_image < 0).any() or (neg_text < 0).any():
            raise ValueError("ITM found no negatives: every item in the batch has the same product id")
        dev = image_tokens.device
        neg_image, neg_text = neg_image.to(dev), neg_text.to(dev)
        tokens_all = torch.cat([image_tokens, image_tokens[neg_image], image_tokens])  # (3B, N, D) pos, neg, pos
        ids_all = torch.cat([input_ids, input_ids, input_ids[neg_text]])  # (3B, L) pos, pos, neg
        mask_all = torch.cat([attention_mask, attention_mask, attention_mask[neg_text]])  # (3B, L)
        labels = torch.cat([torch.ones(b, dtype=torch.long, device=dev),
                            torch.zeros(2 * b, dtype=torch.long, device=dev)])  # (3B,)
        return ItmBatch(tokens_all, ids_all, mask_all, labels, neg_image, neg_text)

    def forward(
        self,
        itm_logits_fn: ItmLogitsFn,
        image_tokens: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sim_i2t: torch.Tensor,
        sim_t2i: torch.Tensor | None = None,
        product_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """image_tokens (B, N, D) frozen-encoder tokens; input_ids / attention_mask (B, L) the texts;
        sim_i2t (B, B) ITC logits of images vs texts, sim_t2i (B, B) of texts vs images (default sim_i2t.T)."""
        batch = self.build_batch(image_tokens, input_ids, attention_mask, sim_i2t, sim_t2i, product_ids, generator)
        logits = itm_logits_fn(batch.image_tokens, batch.input_ids, batch.attention_mask)  # (3B, 2)
        if logits.shape != (batch.labels.shape[0], 2):
            raise ValueError(f"itm_logits_fn must return ({batch.labels.shape[0]}, 2) logits, "
                             f"got {tuple(logits.shape)}")
        return {"itm_loss": F.cross_entropy(logits.float(), batch.labels)}
