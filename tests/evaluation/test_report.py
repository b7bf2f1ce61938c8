"""The evaluation report: plots for what was measured, Markdown and HTML naming them."""
from PIL import Image

from unifashion.data.formats import catalog
from unifashion.evaluation.evaluate import EvalDetails
from unifashion.evaluation.report import write_eval_report


def test_report_draws_what_was_measured(small_world, tmp_path):
    pairs = catalog.load(small_world[0] / "catalog", split="val")[:3]
    details = EvalDetails(
        curves={"cmr.full.i2t": {1: 10.0, 5: 40.0, 10: 60.0}, "cmr.full.t2i": {1: 12.0, 5: 45.0, 10: 70.0},
                "cir.dress": {k: min(100.0, 2.0 * k) for k in range(1, 101)}},
        captions=[{"image": p.image, "prediction": "a red dress", "reference": p.caption} for p in pairs],
        generations=[{"real": p.image, "generated": Image.new("RGB", (32, 32), (200, 0, 0)), "text": p.caption}
                     for p in pairs])
    metrics = {"cir.dress.r10": 20.0, "cir.dress.r50": 100.0, "cir.shirt.r10": 30.0, "cir.shirt.r50": 90.0,
               "cir.avg.r10": 25.0, "cir.avg.r50": 95.0, "cir.avg.score": 60.0, "cir.variants.img.avg.score": 55.0,
               "cap.bleu4": 3.0}
    meta = {"model": "m", "data": {"world": "w"}, "time": "2026-11-24T00:00:00+00:00", "seconds": 1.0}
    md = write_eval_report(tmp_path / "r", metrics, meta, details).read_text()
    for name in ("recall_curves", "cir_categories", "captions", "generations"):
        png = tmp_path / "r" / "plots" / f"{name}.png"
        assert png.stat().st_size > 1000 and f"plots/{name}.png" in md, name
        assert Image.open(png).size[0] > 300
    assert "| cap.bleu4 | 3.00 |" in md and "| a red dress |" in md
    assert "plots/recall_curves.png" in (tmp_path / "r" / "report.html").read_text()
    # nothing measured for a plot: no plot and no mention
    md = write_eval_report(tmp_path / "e", {"cap.bleu4": 1.0}, meta, EvalDetails()).read_text()
    assert "plots/" not in md and not any((tmp_path / "e" / "plots").iterdir())
