"""The phase settings both recipes train the `quickstart` model with (its captioner and UNet are small
and trained from scratch). The quickstart and the ablation start from the same ones."""
from __future__ import annotations

from unifashion.training import phases

# ITM stays at chance (0.636) for 100 steps of the quickstart's budget while costing ~70% of each step: off
PHASE1A = phases.QFormerPretraining(lr=2e-4, itm_weight=0.0)
# from-scratch learning rates for the from-scratch captioner and UNet
PHASE1B = phases.GenerativeAdaptation(llm_lr=1e-3, adapter_lr=1e-3, diffusion_lr=1e-3)
PHASE2 = phases.ComposedFinetuning(lr=1e-4, cir_itm_weight=0.0)
