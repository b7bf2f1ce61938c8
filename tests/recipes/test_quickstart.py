"""The quickstart pipeline end to end on the tiny model: every stage runs, the report and model exist."""
import json

from unifashion.evaluation.evaluate import EvalConfig
from unifashion.models.unified import UniFashion
from unifashion.recipes.quickstart import QuickstartConfig, run_quickstart
from unifashion.recipes.quickstart_report import TARGETS


def test_quickstart_runs_every_stage_on_a_tiny_model(tmp_path):
    config = QuickstartConfig(model_config="tiny", products=120, val_fraction=0.5, test_fraction=0.2, image_size=64, batch_size=4, generator_batch_size=4,
                              vae_steps=2, phase1a_steps=2, phase1b_steps=2, diffusion_steps=2, phase2_steps=2,
                              tryon_steps=2, caption_vocab=200,
                              evaluation=EvalConfig(categories=("dress", "toptee"), cmr_queries=10,
                                                    cmr_seeds=(0,), caption_items=2, max_new_tokens=3,
                                                    generation_items=4, generation_steps=2, tryon_items=2,
                                                    probe_items=20))
    summary = run_quickstart(tmp_path / "q", config, log=lambda line: None)
    out = tmp_path / "q"
    for key in ("cmr.sample100.mean", "cmr.sample100.short_draws", "cir.avg.score", "cir.gallery_min", "cap.bleu4",
                "cap.attr.colour", "cap.loops", "gen.fid", "gen.fid_real", "gen.probe.colour", "gen.probe.colour_real",
                "gen.samples", "gen.image_size"):
        assert key in summary["before"] and key in summary["after"], key
    for key in ("tryon.psnr_outside", "tryon.paired.fid"):
        assert key in summary["after"], key
    assert "cir.variants.both.avg.score" in summary["after"]  # gallery captions were used
    assert set(summary["timings"]) >= {"synth", "train vae", "train phase1a", "train phase1b", "train phase1b-diffusion",
                                      "train phase2", "train tryon", "evaluate try-on"}
    for name in ("report.md", "report.html", "metrics.json", "report_img/losses.png", "report_img/captions.png",
                 "report_img/generation.png", "report_img/retrieval.png", "report_img/composed.png",
                 "report_img/tryon.png", "gallery_captions.val.json", "eval_report/report.md",
                 "caption_tokenizer/tokenizer.json", "tryon_model/config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seconds"] == summary["seconds"]
    report = (out / "report.md").read_text()
    assert "| cmr.sample100.mean |" in report and "## Targets" in report and "![tryon](report_img/tryon.png)" in report
    assert [t["metric"] for t in metrics["targets"]] == [k for k, _, _ in TARGETS]
    model = UniFashion.from_pretrained(out / "model")  # the trained model every other command accepts
    assert model.captioner.lm.get_input_embeddings().num_embeddings <= 200  # the world's own word pieces
    assert UniFashion.from_pretrained(out / "tryon_model").generator.config.inpainting
    # the search index `unifashion serve` answers from: the catalog's unseen test images, built by that model
    from unifashion.search.engine import CatalogSearch
    from unifashion.data.formats import catalog
    from unifashion.search.catalog_index import CatalogIndex

    index = CatalogIndex.open(out / "index")
    unseen = [p.item_id for p in catalog.load(out / "world" / "catalog", "test")]
    assert sorted(it.item_id for it in index.items()) == sorted(unseen)
    assert summary["index"]["items"] == len(unseen) and index.manifest["model"]["source"] == str((out / "model").resolve())
    assert len(CatalogSearch(model, index).text(["a dress"], k=3)[0]) == 3
