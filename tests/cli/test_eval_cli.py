"""`unifashion eval`: which data serves which task, the documented keys with `meta`, one-line errors."""
import json
import subprocess
import sys

from dataclasses import replace

import numpy as np
import pytest

from unifashion.errors import ConfigError, DataError
from unifashion.evaluation.evaluate import EvalConfig, evaluate
from unifashion.data.sources import fashioniq_categories, find_sources
from unifashion.models.unified import UniFashion


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "unifashion", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "model"
    UniFashion.from_config("tiny").save_pretrained(out)
    return out


def test_sources_of_a_world_and_of_single_datasets(small_world):
    world = small_world[0]
    s = find_sources([world])
    assert (s.pairs, s.pairs_format, s.fashioniq, s.vitonhd) == (world / "catalog", "catalog", world / "fashioniq",
                                                                 world / "vitonhd")
    s.check_tasks(("cmr", "cir", "cap", "gen", "tryon"))
    only_fiq = find_sources([world / "fashioniq"])
    only_fiq.check_tasks(("cir",))
    with pytest.raises(DataError, match=r"task cmr needs image-text pairs .* given: .*fashioniq \(fashioniq\)"):
        only_fiq.check_tasks(("cir", "cmr"))
    with pytest.raises(DataError, match="unknown task 'retrieval'"):
        s.check_tasks(("retrieval",))
    both = find_sources([world / "fashiongen", world / "fashioniq"])
    assert both.pairs_format == "fashiongen" and both.fashioniq == world / "fashioniq" and both.vitonhd is None
    with pytest.raises(DataError, match="a second image-text pairs"):
        find_sources([world / "fashiongen", world / "catalog"])
    with pytest.raises(DataError, match="no Fashion-IQ category 'hats'"):
        fashioniq_categories(world / "fashioniq", "val", ("hats",))


def test_paired_scores_are_the_diagonal_of_the_retrieval_scores(small_world):
    from unifashion.data.formats import catalog
    from unifashion.evaluation.model_scores import image_embeddings, max_over_queries, paired_scores, text_embeddings

    model = UniFashion.from_config("tiny")
    pairs = catalog.load(small_world[0] / "catalog", split="val")[:5]
    texts = [p.caption for p in pairs]
    full = max_over_queries(image_embeddings(model, [p.image for p in pairs]), text_embeddings(model, texts))  # (5, 5)
    np.testing.assert_allclose(paired_scores(model, [p.image.load() for p in pairs], texts, batch_size=2),
                               np.diag(full), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="as many images as texts"):
        paired_scores(model, [pairs[0].image.load()], texts)


def test_tryon_is_scored_paired_and_unpaired_with_the_inpainting_model(small_world):
    model = UniFashion.from_config("tiny")
    sources = find_sources([small_world[0]])
    config = EvalConfig(tasks=("tryon",), tryon_items=3, generation_steps=2)
    with pytest.raises(ConfigError, match="inpainting"):
        evaluate(model, sources, config)
    model.make_generator_inpainting()
    seen = []
    original = model.generate_tryon

    def spy(samples, *, garment_image=True, **kwargs):
        seen.append(garment_image)
        return original(samples, garment_image=garment_image, **kwargs)

    model.generate_tryon = spy
    m = evaluate(model, sources, replace(config, tasks=("tryon", "design")))
    fidelity = {"tryon.psnr_outside", "tryon.psnr_outside_vae", "tryon.probe.colour", "tryon.probe.colour_real"}  # paired
    assert set(m) == {f"{t}.{s}.{k}" for t in ("tryon", "design") for s in ("paired", "unpaired")
                      for k in ("fid", "kid_mean", "kid_std")} | fidelity
    assert 0.0 <= m["tryon.probe.colour"] <= 1.0 and m["tryon.psnr_outside"] > 0 and m["tryon.psnr_outside_vae"] > 0
    assert all(np.isfinite(v) for v in m.values()) and m["tryon.paired.fid"] > 0
    assert seen == [True, True, False, False]  # design draws from the caption alone


def test_eval_cli_writes_the_documented_keys_and_meta(small_world, tiny_dir, tmp_path):
    out = tmp_path / "m.json"
    r = run_cli("eval", "--model", str(tiny_dir), "--data", str(small_world[0]), "--tasks", "cmr,cir",
                "--split", "test", "--cmr-queries", "10", "--caption-gallery", "--out", str(out),
                "--report", str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(out.read_text())
    for key in ("cmr.sample100.i2t.r1", "cmr.sample100.mean", "cmr.full.t2i.r10", "cir.avg.r10", "cir.avg.score",
                "cir.variants.img.avg.score", "cir.variants.cap.avg.score", "cir.variants.both.avg.score"):
        assert 0.0 <= m[key] <= 100.0, key
    meta = m["meta"]
    assert meta["model"] == str(tiny_dir) and meta["tasks"] == ["cmr", "cir"] and meta["seed"] == 0
    assert set(meta["data"]) == {"world", "catalog", "fashioniq", "vitonhd"} and meta["versions"]["torch"]
    assert "cmr.sample100.mean" in r.stdout  # the human table
    assert (tmp_path / "report" / "plots" / "recall_curves.png").is_file()
    assert "cmr.full.i2t" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize("args, named", [
    (["--tasks", "cmr,retrieval"], "retrieval"),
    (["--tasks", "cir", "--categories", "hats"], "hats"),
    (["--tasks", "cmr", "--split", "nosuch"], "nosuch"),
])
def test_eval_cli_bad_requests_are_one_line_errors(small_world, tiny_dir, args, named):
    r = run_cli("eval", "--model", str(tiny_dir), "--data", str(small_world[0]), *args)
    assert r.returncode == 1, r.stderr[-2000:]
    # the error is one line; in a log (stderr no terminal) progress lines such as "loading model from" precede it
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("loading model from ")]
    assert named in r.stderr and len(lines) == 1 and lines[0].startswith("error:"), r.stderr


def test_eval_cli_json_to_stdout_and_the_paper_tables(small_world, tiny_dir):
    r = run_cli("eval", "--model", str(tiny_dir), "--data", str(small_world[0]), "--tasks", "cmr", "--split", "test",
                "--cmr-queries", "5", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["meta"]["tasks"] == ["cmr"]  # stdout is the JSON alone: no table, no progress
    r = run_cli("eval", "--model", str(tiny_dir), "--data", str(small_world[0]), "--tasks", "cmr", "--split", "test",
                "--cmr-queries", "5", "--tables")
    assert r.returncode == 0 and "Table 1" in r.stdout and "71.44" in r.stdout


def test_eval_cli_task_without_its_data(small_world, tiny_dir):
    r = run_cli("eval", "--model", str(tiny_dir), "--data", str(small_world[0] / "fashioniq"), "--tasks", "cap")
    assert r.returncode == 1 and "task cap needs image-text pairs" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_paper_tables_put_our_numbers_beside_the_papers_and_mark_other_data():
    from unifashion.evaluation.paper_tables import paper_tables

    metrics = {"cmr.sample100.i2t.r1": 50.0, "cmr.sample100.mean": 60.0, "cap.bleu4": 10.0}
    tables = {t.title.split(":")[0]: t for t in paper_tables(metrics, {"fashiongen": "/d/fg"})}
    assert set(tables) == {"Table 1", "Table 2", "Table 5"}  # nothing measured for 3 and 4: left out
    (paper_label, paper), (label, ours) = tables["Table 1"].rows
    assert paper[0] == 71.44 and paper[-1] == 87.55 and ours[0] == 50.0 and ours[-1] == 60.0 and ours[1] is None
    assert label == "ours (fashiongen /d/fg)"  # FashionGen is the paper's data: comparable protocol
    world = paper_tables(metrics, {"world": "/w", "catalog": "/w/catalog"})
    assert all("different data, not comparable" in t.rows[1][0] for t in world)
