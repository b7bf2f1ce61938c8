"""The quickstart pipeline end to end on the tiny model: every stage runs, the report and model exist."""
import json

from unifashion.evaluation.evaluate import EvalConfig
from unifashion.models.unified import UniFashion
from unifashion.quickstart import QuickstartConfig, run_quickstart


def test_quickstart_runs_every_stage_on_a_tiny_model(tmp_path):
    config = QuickstartConfig(model_config="tiny", products=40, image_size=64, batch_size=4, vae_steps=2,
                              phase1a_steps=2, phase1b_steps=2, diffusion_steps=2, phase2_steps=2,
                              evaluation=EvalConfig(cmr_queries=10, cmr_seeds=(0,), caption_items=2, max_new_tokens=3,
                                                    generation_items=2, generation_steps=2))
    summary = run_quickstart(tmp_path / "q", config, log=lambda line: None)
    out = tmp_path / "q"
    for key in ("cmr.sample100.mean", "cir.avg.score", "cap.bleu4", "gen.fid"):
        assert key in summary["before"] and key in summary["after"]
    assert "cir.variants.both.avg.score" in summary["after"]  # gallery captions were used
    assert set(summary["timings"]) >= {"synth", "train vae", "train phase1a", "train phase1b", "train phase1b-diffusion",
                                      "train phase2"}
    for name in ("report.md", "report.html", "metrics.json", "report_img/losses.png", "report_img/captions.png",
                 "report_img/generation.png", "report_img/retrieval.png", "report_img/composed.png",
                 "gallery_captions.val.json", "eval_report/report.md", "eval_report/report.html",
                 "eval_report/plots/recall_curves.png", "eval_report/plots/cir_categories.png",
                 "eval_report/plots/captions.png", "eval_report/plots/generations.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["seconds"] == summary["seconds"]
    report = (out / "report.md").read_text()
    assert "| cmr.sample100.mean |" in report and "## Targets" in report and "Target at rank: " in report
    targets = {t["metric"]: t for t in json.loads((out / "metrics.json").read_text())["targets"]}
    assert set(targets) == {"cmr.sample100.r1", "cmr.sample100.mean", "cir.avg.score", "cap.bleu4",
                            "gen.colour_match", "gen.fid"}
    fid = targets["gen.fid"]
    assert fid["met"] == (fid["trained"] <= fid["untrained"] / 2)
    model = UniFashion.from_pretrained(out / "model")  # the trained model every other command accepts
    # the search index `unifashion serve` answers from: the catalog's unseen images, built by that model
    from unifashion.catalog_search import CatalogSearch
    from unifashion.data.formats import catalog
    from unifashion.index.catalog_index import CatalogIndex

    index = CatalogIndex.open(out / "index")
    unseen = [p.item_id for split in ("val", "test") for p in catalog.load(out / "world" / "catalog", split)]
    assert sorted(it.item_id for it in index.items()) == sorted(unseen)
    assert summary["index"]["items"] == len(unseen) and index.manifest["model"]["source"] == str((out / "model").resolve())
    assert len(CatalogSearch(model, index).text(["a dress"], k=3)[0]) == 3


def test_target_rows_judge_thresholds_and_the_halved_fid():
    from unifashion.quickstart import target_rows, with_derived

    before = with_derived({"cmr.sample100.i2t.r1": 10.0, "cmr.sample100.t2i.r1": 20.0, "gen.fid": 300.0})
    after = with_derived({"cmr.sample100.i2t.r1": 60.0, "cmr.sample100.t2i.r1": 41.0, "gen.fid": 150.0,
                          "cap.bleu4": 14.9, "gen.colour_match": 40.0, "gen.colour_match_real": 45.3})
    rows = {r["metric"]: r for r in target_rows(before, after)}
    assert before["cmr.sample100.r1"] == 15.0 and rows["cmr.sample100.r1"]["trained"] == 50.5
    assert rows["cmr.sample100.r1"]["met"] and not rows["cap.bleu4"]["met"]
    assert rows["gen.fid"]["met"]  # 150 <= 300 / 2
    assert not target_rows({"gen.fid": 300.0}, {"gen.fid": 151.0})[0]["met"]
    assert "cir.avg.score" not in rows  # not measured: no row
    assert not rows["gen.colour_match"]["met"] and rows["gen.colour_match"]["target"] == ">= 50 (real images: 45.3)"
