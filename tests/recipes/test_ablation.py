"""The Table 5 ablation: every variant trains from the same phase-1a model, is scored, and tabulated."""
import json

import pytest

from unifashion.recipes.ablation import VARIANTS, AblationConfig, ablation_table, run_ablation
from unifashion.evaluation.evaluate import EvalConfig


def test_ablation_table_means_and_stds_by_hand():
    runs = [{"Base": {"cir.avg.score": 10.0, "cmr.sample100.mean": 50.0}, "+LLM": {"cir.avg.score": 20.0}},
            {"Base": {"cir.avg.score": 14.0, "cmr.sample100.mean": 52.0}, "+LLM": {"cir.avg.score": 22.0}}]
    t = ablation_table(runs)
    assert t["Base"]["CIR"] == {"mean": 12.0, "std": pytest.approx(2.8284271), "n": 2}
    assert t["Base"]["CMR"]["mean"] == 51.0 and t["+LLM"]["CIR"]["mean"] == 21.0
    assert t["Base"]["FIC BLEU-4"] is None and t["+LLM+diff."]["CIR"] is None  # not measured: no number


def test_ablation_runs_every_variant_end_to_end(small_world, tmp_path):
    config = AblationConfig(model_config="tiny", seeds=(0,), batch_size=4, phase1a_steps=2, vae_steps=2,
                            phase1b_steps=2, phase2_steps=2,
                            evaluation=EvalConfig(split="test", cmr_queries=10, cmr_seeds=(0,), caption_items=3,
                                                  max_new_tokens=3, generation_items=4, generation_steps=2))
    summary = run_ablation(small_world[0], tmp_path, config, log=lambda line: None)
    results = summary["per_seed"]["0"]
    assert set(results) == set(VARIANTS)
    assert "cap.bleu4" not in results["Base"] and "gen.fid" not in results["+LLM"]
    assert "cir.variants.both.avg.score" in results["+LLM w/ cap"] and "gen.fid" in results["+LLM+diff."]
    assert "cir.variants.both.avg.score" not in results["+LLM"]  # +LLM alone ranks by image only
    # one shared phase-1a run per seed; each variant's own phases after it
    runs = sorted(p.name for p in (tmp_path / "seed0").iterdir())
    assert runs == ["phase1a", "phase1b-llm", "phase1b-llm-diff", "phase2-base", "phase2-llm", "phase2-llm-diff", "vae"]
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["table"]["Base"]["CIR"]["n"] == 1 and (tmp_path / "table.md").read_text().startswith("| variant |")
