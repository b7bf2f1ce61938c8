"""The process group a command runs in: one process when run plainly, several under `accelerate launch`
(or torchrun). One rule for the whole package, so that every part agrees on it."""
from __future__ import annotations

import torch


def process_state():
    """accelerate's PartialState for this launch. Without a GPU it is asked for CPU processes: the
    multi-GPU launcher (torchrun) starts them, and PartialState() alone would take each for a lone
    process (accelerate sets up gloo only when told cpu=True), so every process would do all the work."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
