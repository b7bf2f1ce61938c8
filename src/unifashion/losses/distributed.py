"""Gathering a batch across processes for the contrastive losses (ITC, the CIR InfoNCE terms).

With torch.distributed initialised and more than one process, each process contrasts its local items
against the *global* batch. Gradients flow back to the local copies: the backward of `gather_with_grad` sums, over all
processes, the gradient every process computed for this process's slice. Each process's loss is the mean over its *local*
rows (its images / texts / queries against every gathered column), so

    mean over processes of the local losses == the single-process loss on the full batch, and
    the gradient of a local embedding == world_size x its single-process full-batch gradient,

and DDP's gradient averaging (division by world_size) makes the parameter gradients equal to the
single-process ones (open_clip's `local_loss=True, gather_with_grad=True`). Every process must hold
the same number of items (use drop_last=True); a mismatch raises ValueError on every process.
Without torch.distributed (or with one process) everything here is the identity.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group; (0, 1) when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_equal_sizes(x: torch.Tensor, world_size: int) -> None:
    size = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    if len(set(sizes)) > 1:
        raise ValueError(f"local batch sizes differ across processes {sizes}: the contrastive gather needs equal "
                         "local batches (use drop_last=True in the distributed sampler)")


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every process's gradient for this process's slice (LAVIS's
    GatherLayer). Not torch.distributed.nn.functional.all_gather: on gloo its backward (an all-to-all
    by scatter into `empty_like(grad)`) scrambles a non-contiguous incoming gradient — the gathered
    texts' gradient from the max-over-queries einsum is one — and returns wrong values."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([g.contiguous() for g in grads])  # (W, b, ...) dense
        dist.all_reduce(stacked)  # sum over processes
        return stacked[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(b, ...) on each of W processes -> (W*b, ...) in rank order; gradients flow to every local copy."""
    _, world_size = world()
    if world_size == 1:
        return x
    _check_equal_sizes(x, world_size)
    return torch.cat(_GatherWithGrad.apply(x.contiguous()), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(b, ...) on each of W processes -> (W*b, ...) in rank order, no gradient (ids, labels)."""
    _, world_size = world()
    if world_size == 1:
        return x
    _check_equal_sizes(x, world_size)
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
