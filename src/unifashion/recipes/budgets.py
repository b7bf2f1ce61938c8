"""The recipes' budgets: how much data and how many optimiser steps each recipe spends, in one place.

Plain numbers, nothing heavy imported: the recipes' configs take them as their defaults and the CLI
shows them as its options' defaults. The phase settings the recipes train with are in phase_settings.py.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuickstartBudget:
    """Sizes and steps that fit the 30-minute budget on 2 CPU cores (chosen by measurement: README,
    "Quickstart")."""
    # 4000 products: ~960 train, ~2900 held out (val), ~160 test. Every protocol needs many held-out
    # products: sample-100 needs 100 same-subcategory negatives per query, a Fashion-IQ gallery >= 300
    products: int = 4000
    val_fraction: float = 0.7
    test_fraction: float = 0.04
    image_size: int = 128  # pixels of the world's images
    batch_size: int = 16  # the Q-Former phases (1a, 2) and the VAE
    generator_batch_size: int = 32  # the phases whose frozen inputs are cached (1b, q2I-only, try-on)
    vae_steps: int = 900
    phase1a_steps: int = 200
    phase1b_steps: int = 500
    diffusion_steps: int = 400  # extra q2I-only steps after phase 1b (0 skips them)
    phase2_steps: int = 60
    tryon_steps: int = 300  # 0 skips the try-on phase and its evaluation
    caption_vocab: int = 1024  # word pieces of the from-scratch captioner's tokenizer


@dataclass(frozen=True)
class AblationBudget:
    """Budgets shared by every variant, sized to finish three seeds on the synthetic world within an hour
    on 2 cores (README, `unifashion ablate`, has the measured time)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 16
    phase1a_steps: int = 80
    vae_steps: int = 100
    phase1b_steps: int = 32
    phase2_steps: int = 20


QUICKSTART_BUDGET = QuickstartBudget()
ABLATION_BUDGET = AblationBudget()
