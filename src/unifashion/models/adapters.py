"""Task-specific adapters: the Q-Former's query outputs, projected for each consumer (paper §3.1).

The same 32 query outputs become the LLM's soft prompt and the diffusion UNet's cross-attention
condition; each consumer gets its own linear projection, trained while the Q-Former is frozen
(phase 1b) and frozen while the Q-Former is tuned (phase 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AdapterConfig:
    query_dim: int = 384  # Q-Former hidden size (the query outputs' width)
    llm_dim: int = 576  # the LLM's input-embedding width (SmolLM2-135M: 576; Vicuna-7B: 4096)
    condition_dim: int = 256  # the UNet's cross-attention width (SD 1.4: 768)


class TaskAdapters(nn.Module):
    def __init__(self, config: AdapterConfig):
        super().__init__()
        self.config = config
        self.to_llm = nn.Linear(config.query_dim, config.llm_dim)
        self.to_condition = nn.Linear(config.query_dim, config.condition_dim)

    def soft_prompt(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, Q, query_dim) -> (B, Q, llm_dim): the LLM's prefix embeddings."""
        return self.to_llm(queries)  # (B, Q, llm_dim)

    def condition(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, Q, query_dim) -> (B, Q, condition_dim): the UNet's cross-attention tokens."""
        return self.to_condition(queries)  # (B, Q, condition_dim)
