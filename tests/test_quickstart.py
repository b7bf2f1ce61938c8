"""The quickstart pipeline end to end on the tiny model: every stage runs, the report and model exist."""
import json

from unifashion.evaluation.evaluate import EvalConfig
from unifashion.models.unified import UniFashion
from unifashion.quickstart import QuickstartConfig, run_quickstart


def test_quickstart_runs_every_stage_on_a_tiny_model(tmp_path):
    config = QuickstartConfig(model_config="tiny", products=40, image_size=64, batch_size=4, vae_steps=2,
                              phase1a_steps=2, phase1b_steps=2, phase2_steps=2,
                              evaluation=EvalConfig(cmr_queries=10, cmr_seeds=(0,), caption_items=2, max_new_tokens=3,
                                                    generation_items=2, generation_steps=2))
    summary = run_quickstart(tmp_path / "q", config, log=lambda line: None)
    out = tmp_path / "q"
    for key in ("cmr.sample100.mean", "cir.avg.score", "cap.bleu4", "gen.fid"):
        assert key in summary["before"] and key in summary["after"]
    assert "cir.variants.both.avg.score" in summary["after"]  # gallery captions were used
    assert set(summary["timings"]) >= {"synth", "train vae", "train phase1a", "train phase1b", "train phase2"}
    for name in ("report.md", "report.html", "metrics.json", "report_img/losses.png", "report_img/captions.png",
                 "report_img/generation.png", "gallery_captions.val.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["seconds"] == summary["seconds"]
    assert "| cmr.sample100.mean |" in (out / "report.md").read_text()
    UniFashion.from_pretrained(out / "model")  # the trained model every other command accepts
