"""The quickstart's report: the targets judged rule by rule, and a page that names every picture and metric."""
from dataclasses import asdict

from unifashion.recipes.quickstart import QuickstartConfig
from unifashion.recipes.quickstart_report import SECTIONS, target_rows, with_derived, write_page


def test_target_rows_judge_each_rule():
    before = with_derived({"cmr.sample100.i2t.r1": 10.0, "cmr.sample100.t2i.r1": 20.0, "gen.fid": 300.0,
                           "cir.avg.score": 40.0})
    after = with_derived({"cmr.sample100.i2t.r1": 70.0, "cmr.sample100.t2i.r1": 51.0, "gen.fid": 75.0,
                          "cir.avg.score": 64.0, "cap.loops": 0.03, "cmr.sample100.short_draws": 0.0,
                          "gen.probe.colour": 0.62, "gen.probe.colour_real": 0.9})
    rows = {}
    for r in target_rows(before, after):
        rows.setdefault(r["metric"], []).append(r)
    assert before["cmr.sample100.r1"] == 15.0 and rows["cmr.sample100.r1"][0]["trained"] == 60.5
    assert rows["cmr.sample100.r1"][0]["met"] and rows["cmr.sample100.short_draws"][0]["met"]
    assert rows["gen.fid"][0]["met"]  # 75 <= 300 / 4
    assert not target_rows({"gen.fid": 300.0}, {"gen.fid": 76.0})[-4]["met"]
    absolute, gain = rows["cir.avg.score"]
    assert absolute["met"] and not gain["met"] and gain["target"] == ">= untrained + 25 = 65.0"  # 64 < 40 + 25
    assert not rows["cap.loops"][0]["met"]  # 0.03 > 0.02
    colour = rows["gen.probe.colour"][0]  # 0.62 < 0.7 x 0.9 = 0.63
    assert not colour["met"] and colour["target"] == ">= 0.7 x gen.probe.colour_real = 0.630"
    assert not rows["cap.bleu4"][0]["met"] and rows["cap.bleu4"][0]["trained"] is None  # not measured: not met


def test_the_page_shows_every_picture_and_every_metric_before_and_after(tmp_path):
    before, after = {"cap.bleu4": 0.5, "gen.fid": 300.0}, {"cap.bleu4": 30.0, "cir.avg.score": 64.0}
    pictures = ["losses", "retrieval", "composed", "captions", "generation", "tryon"]
    summary = {"config": asdict(QuickstartConfig()), "timings": {"synth": 1.5}, "before": before, "after": after,
               "model": "out/model", "targets": target_rows(with_derived(before), with_derived(after)),
               "seconds": 12.3, "examples": {"retrieval_ranks": [1, 4], "composed_ranks": [2], "composed_gallery": 300,
                                             "pictures": pictures}}
    write_page(tmp_path, summary)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert md.startswith("# UniFashion quickstart report\n") and "Wall time: **12 s** (synth 1.5 s)." in md
    assert "4000 synthetic products at 128 px" in md and "steps: VAE 900, phase 1a 200" in md
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["Targets", *(SECTIONS[p] for p in pictures), "Every metric"]
    for name in pictures:
        assert f"![{name}](report_img/{name}.png)" in md and f"<img src='report_img/{name}.png'>" in page
    assert "| cap.bleu4 | 0.500 | 30.0 |" in md and "| gen.fid | 300.0 | – |" in md and "| cir.avg.score | – | 64.0 |" in md
    assert "<tr><td>cap.bleu4</td><td>0.500</td><td>30.0</td></tr>" in page and "of 300" in md
