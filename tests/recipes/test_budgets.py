"""The recipes' budgets are the recipes' defaults, and both recipes train with the same phase settings."""
from dataclasses import fields

from unifashion.recipes import phase_settings
from unifashion.recipes.ablation import AblationConfig
from unifashion.recipes.budgets import ABLATION_BUDGET, QUICKSTART_BUDGET
from unifashion.recipes.quickstart import QuickstartConfig


def test_each_recipe_takes_its_budget_as_its_defaults():
    for config, budget in ((QuickstartConfig(), QUICKSTART_BUDGET), (AblationConfig(), ABLATION_BUDGET)):
        for f in fields(budget):
            assert getattr(config, f.name) == getattr(budget, f.name), f.name


def test_both_recipes_train_the_shared_phases():
    quick, ablation = QuickstartConfig(), AblationConfig()
    assert quick.phase1a == ablation.phase1a == phase_settings.PHASE1A
    assert quick.phase1b == ablation.phase1b == phase_settings.PHASE1B
    assert quick.phase2 == ablation.phase2 == phase_settings.PHASE2
    assert phase_settings.PHASE1A.itm_weight == 0.0 and phase_settings.PHASE2.cir_itm_weight == 0.0
