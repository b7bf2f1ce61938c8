"""One process of the 2-process ITC / CIR check (launched by tests/losses/test_distributed_itc.py).

Each process holds its half of a global batch, computes the losses with the embeddings gathered across
processes, and writes its losses and gradients to OUT_DIR/rank{r}.safetensors. The parent test
compares them with a single-process run on the full batch (`reference` below, shared with it).
Usage: python _dist_itc_worker.py OUT_DIR   (under accelerate launch / torchrun: RANK, WORLD_SIZE set)
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from unifashion.losses import ComposedRetrievalLoss, ImageTextContrastiveLoss

N, Q, E_IN, E = 8, 3, 12, 16  # global batch, queries, raw width, embedding width
# product ids: 3 appears on both sides of the rank boundary (items 3 and 4), 0 at both ends
PRODUCT_IDS = torch.tensor([0, 1, 2, 3, 3, 4, 5, 0])


def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(N, Q, E_IN, generator=g),
        "text": torch.randn(N, E_IN, generator=g),
        "composed": torch.randn(N, E_IN, generator=g),
        "caption": torch.randn(N, E_IN, generator=g),
    }


class Toy(nn.Module):
    """A projection to the embedding space and the ITC temperature: the parameters DDP synchronises."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.proj = nn.Linear(E_IN, E)
        self.temperature = nn.Parameter(torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x), dim=-1)


def embedding_losses(sl: slice) -> dict[str, torch.Tensor]:
    """Losses and gradients w.r.t. the (local) normalised embeddings of items `sl`."""
    d = data()
    leaves = {k: F.normalize(v[sl], dim=-1).requires_grad_() for k, v in d.items()}
    ids = PRODUCT_IDS[sl]
    out: dict[str, torch.Tensor] = {}
    itc = ImageTextContrastiveLoss()(leaves["image"], leaves["text"], torch.tensor(0.1), ids)["itc_loss"]
    itc.backward()
    out["itc_loss"] = itc.detach()
    out["itc_grad_image"], out["itc_grad_text"] = leaves["image"].grad, leaves["text"].grad
    cir_in = {k: F.normalize(v[sl], dim=-1).requires_grad_() for k, v in d.items()}
    # the composed query contrasted with target images (the "image" queries) and target captions
    cir = ComposedRetrievalLoss()(cir_in["composed"], cir_in["image"], cir_in["caption"], torch.tensor(0.1),
                                  target_ids=ids)
    (cir["cir_image_loss"] + cir["cir_caption_loss"]).backward()
    out["cir_image_loss"], out["cir_caption_loss"] = cir["cir_image_loss"].detach(), cir["cir_caption_loss"].detach()
    for k in ("composed", "image", "caption"):
        out[f"cir_grad_{k}"] = cir_in[k].grad
    return out


def toy_step(model: nn.Module, sl: slice) -> None:
    """One ITC backward through `model` (a Toy, or a DDP-wrapped Toy) on items `sl`, one forward call."""
    d = data()
    image, text = d["image"][sl], d["text"][sl]
    b = image.shape[0]
    emb = model(torch.cat([image.reshape(-1, E_IN), text]))  # (b*Q + b, E)
    image_embeds, text_embeds = emb[: b * Q].reshape(b, Q, E), emb[b * Q:]
    temperature = getattr(model, "module", model).temperature
    ImageTextContrastiveLoss()(image_embeds, text_embeds, temperature, PRODUCT_IDS[sl])["itc_loss"].backward()


def reference() -> dict[str, torch.Tensor]:
    """Single process, full batch."""
    out = embedding_losses(slice(0, N))
    toy = Toy()
    toy_step(toy, slice(0, N))
    out.update({f"param_grad_{n}": p.grad for n, p in toy.named_parameters()})
    return out


def main(out_dir: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")  # env:// from the launcher (MASTER_ADDR=127.0.0.1)
    rank, world = dist.get_rank(), dist.get_world_size()
    b = N // world
    sl = slice(rank * b, (rank + 1) * b)
    out = embedding_losses(sl)
    ddp = DistributedDataParallel(Toy())
    toy_step(ddp, sl)
    out.update({f"param_grad_{n}": p.grad for n, p in ddp.module.named_parameters()})
    out["world_size"] = torch.tensor(world)
    save_file({k: v.contiguous() for k, v in out.items()}, f"{out_dir}/rank{rank}.safetensors")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
