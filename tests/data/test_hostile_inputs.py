"""Hostile and broken input for the image loader, the CLI and the dataset readers (tests/helpers/hostile_corpus.py):
bad images and texts are refused with exit code 1 and one line naming the input, never a traceback;
odd but valid ones are accepted; batch commands skip and list bad items with --skip-bad.

The CLI runs in-process through `unifashion.cli.main` (the entry point that turns errors into one
line), with one tiny model for the module."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import hostile_corpus as corpus
from unifashion import cli
from unifashion.data.formats.detect import summarize
from unifashion.data.samples import MAX_IMAGE_PIXELS, ImageRef
from unifashion.errors import DataError
from unifashion.models.unified import UniFashion


def run(monkeypatch, capsys, *args):
    """(exit code, stdout, stderr) of `unifashion ARGS` through main()."""
    monkeypatch.setattr(sys, "argv", ["unifashion", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def assert_one_line_error(code, err, *names):
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    for name in names:
        assert str(name) in err, err


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return {name: corpus.write_image(folder, f"{name}.jpg", make()) for name, make in corpus.BAD_IMAGES.items()}


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return {name: corpus.write_image(folder, f"{name}{corpus.ODD_SUFFIX[name]}", make())
            for name, make in corpus.ODD_IMAGES.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model directory, the model loaded once): commands get it through a patched UniFashion.from_pretrained."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hostile") / "model"
    UniFashion.from_config("tiny").save_pretrained(directory)
    return directory, UniFashion.from_pretrained(directory)


@pytest.fixture
def cli_model(tiny, monkeypatch):
    monkeypatch.setattr(UniFashion, "from_pretrained", classmethod(lambda cls, path, **kw: tiny[1]))
    return tiny[0]


# ---- the image loader ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.BAD_IMAGES))
def test_bad_images_are_refused_naming_the_file(bad_images, name, tmp_path):
    for path in (bad_images[name], corpus.write_image(tmp_path, f"{name}.png", corpus.BAD_IMAGES[name]())):
        with pytest.raises(DataError) as e:
            ImageRef(path).load()
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_bombs_are_refused_before_decoding(bad_images):
    for name in ("bomb_png", "bomb_gif", "huge_dimensions"):
        with pytest.raises(DataError, match=f"limit of {MAX_IMAGE_PIXELS:,} pixels"):
            ImageRef(bad_images[name]).load()


def test_truncated_images_are_never_padded(bad_images):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # after importing the CLI, models and readers
    with pytest.raises(DataError, match="truncated"):
        ImageRef(bad_images["truncated_jpeg"]).load()


def test_odd_images_load_as_rgb(odd_images):
    expected_size = {"exif_rotated_jpeg": (20, 40), "wide_thin_png": (4000, 2), "one_pixel_png": (1, 1),
                     "animated_gif": (24, 24)}
    for name, path in odd_images.items():
        rgb = ImageRef(path).load_rgb()
        assert rgb.mode == "RGB", name
        assert rgb.size == expected_size.get(name, rgb.size), name
    gray16 = np.asarray(ImageRef(odd_images["gray16_png"]).load_rgb())
    assert 0 < gray16.mean() < 255 and gray16.max() > 200  # scaled to 8 bits, not clipped to white
    assert tuple(np.asarray(ImageRef(odd_images["animated_gif"]).load_rgb())[0, 0]) == (255, 0, 0)  # first frame
    palette = np.asarray(ImageRef(odd_images["palette_alpha_png"]).load_rgb())
    assert (palette == 255).all(axis=2).any()  # the transparent palette entry is composited onto white


# ---- the CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.BAD_IMAGES))
def test_cli_refuses_each_bad_image_in_one_line(bad_images, name, monkeypatch, capsys, tmp_path):
    path = bad_images[name]
    code, _, err = run(monkeypatch, capsys, "caption", "--model", tmp_path / "no-model", path)
    assert_one_line_error(code, err, path)  # the image is read (and refused) before the model


def test_every_image_command_refuses_a_bad_image(bad_images, monkeypatch, capsys, tmp_path):
    bad = bad_images["truncated_png"]
    model = tmp_path / "no-model"
    for args in (["classify", "--model", model, "--labels", "dress,shirt", bad],
                 ["generate", "--model", model, "--image", bad, "--out", tmp_path / "g.png"],
                 ["search", "--index", tmp_path / "no-index", "--image", bad],
                 ["search", "--index", tmp_path / "no-index", "--image", bad, "--modify", "in red"]):
        code, _, err = run(monkeypatch, capsys, *args)
        assert_one_line_error(code, err, bad)


def test_a_file_name_with_markup_is_printed_as_is(monkeypatch, capsys, tmp_path):
    path = corpus.write_image(tmp_path / "shirt[", "red][bold].jpg", corpus.BAD_IMAGES["text"]())  # .../shirt[/red]...
    code, _, err = run(monkeypatch, capsys, "caption", "--model", tmp_path / "m", path)
    assert_one_line_error(code, err, path)  # rich's markup neither crashed the handler nor ate "[bold]"


@pytest.mark.parametrize("name", sorted(corpus.BAD_TEXTS))
def test_cli_refuses_bad_texts_in_one_line(name, monkeypatch, capsys, tmp_path):
    text = corpus.BAD_TEXTS[name]
    index, model = tmp_path / "no-index", tmp_path / "no-model"
    for option, args in (("--text", ["search", "--index", index, "--text", text]),
                         ("--modify", ["search", "--index", index, "--item", "x", "--modify", text]),
                         ("--text", ["generate", "--model", model, "--text", text, "--out", tmp_path / "g.png"]),
                         ("--labels", ["classify", "--model", model, "--labels", f"dress,{text}", "x.png"])):
        if option == "--labels" and not text.strip():
            continue  # empty parts of a comma list are dropped: "dress," is the label "dress"
        code, _, err = run(monkeypatch, capsys, *args)
        assert_one_line_error(code, err, option)
        if name == "huge":
            assert "limit is 1,000" in err


def test_cli_accepts_odd_images_and_texts(cli_model, odd_images, monkeypatch, capsys, tmp_path):
    folder = tmp_path / "odd"
    for path in odd_images.values():
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.parent.name / path.name)
    index = tmp_path / "index"
    code, out, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--images", folder,
                         "--out", index, "--no-captions", "--json")
    assert code == 0, err
    assert json.loads(out)["items"] == len(odd_images) and json.loads(out)["skipped"] == []
    for text in corpus.ODD_TEXTS.values():
        code, out, err = run(monkeypatch, capsys, "search", "--index", index, "--text", text, "--k", "3", "--json")
        assert code == 0, err
        assert len(json.loads(out)["hits"]) == 3
    code, out, err = run(monkeypatch, capsys, "search", "--index", index, "--image", odd_images["cmyk_jpeg"],
                         "--modify", corpus.ODD_TEXTS["mixed_scripts"], "--no-rerank", "--json")
    assert code == 0 and json.loads(out)["kind"] == "composed", err
    code, out, err = run(monkeypatch, capsys, "classify", "--model", cli_model, "--labels",
                         "dress," + corpus.ODD_TEXTS["combining"], *odd_images.values(), "--json")
    assert code == 0, err
    assert [r["image"] for r in json.loads(out)] == [str(p) for p in odd_images.values()]


def test_index_build_and_add_skip_bad_images_when_asked(cli_model, small_world, bad_images, monkeypatch, capsys,
                                                        tmp_path):
    good = sorted((small_world[0] / "catalog" / "images").glob("*.png"))[:3]
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in good:
        shutil.copy(p, folder / p.name)
    broken = [shutil.copy(bad_images[n], folder / f"zz_{n}.jpg") for n in ("svg", "truncated_jpeg")]  # in path order
    index = tmp_path / "index"

    # (--json: progress bars stay off stderr when it is not a terminal, leaving only the error line)
    code, _, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--images", folder,
                       "--out", index, "--no-captions", "--json")
    assert_one_line_error(code, err, broken[0])  # without the flag: the first bad item stops the build

    code, out, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--images", folder,
                         "--out", index, "--no-captions", "--skip-bad", "--json", "--restart")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["items"] == len(good)
    assert [s["item"] for s in summary["skipped"]] == ["zz_svg", "zz_truncated_jpeg"]
    assert "not an image" in summary["skipped"][0]["reason"] and "truncated" in summary["skipped"][1]["reason"]
    assert err.count("skipped ") == 2 and "zz_svg" in err

    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(good[0], more / "new_item.png")
    shutil.copy(bad_images["empty"], more / "empty.png")
    code, _, err = run(monkeypatch, capsys, "index", "add", "--index", index, "--images", more, "--json")
    assert_one_line_error(code, err, more / "empty.png")
    code, out, err = run(monkeypatch, capsys, "index", "add", "--index", index, "--images", more, "--skip-bad",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == 1 and json.loads(out)["skipped"][0]["item"] == "empty"

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    shutil.copy(bad_images["zip"], only_bad / "a.png")
    code, _, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--images", only_bad,
                       "--out", tmp_path / "index2", "--skip-bad", "--json")
    assert_one_line_error(code, err, "no usable items")


def test_index_build_skips_bad_records_of_a_dataset_when_asked(cli_model, monkeypatch, capsys, tmp_path):
    fmt, root, where = corpus.BAD_DATASETS["catalog_bad_json_line"](tmp_path)
    code, _, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--data", root,
                       "--out", tmp_path / "index", "--no-captions", "--json")
    assert_one_line_error(code, err, where)
    code, out, err = run(monkeypatch, capsys, "index", "build", "--model", cli_model, "--data", root,
                         "--out", tmp_path / "index", "--no-captions", "--skip-bad", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["items"] == 2 and summary["skipped"][0]["item"].endswith(where)
    assert "malformed JSON" in summary["skipped"][0]["reason"]


def test_captions_skip_bad_gallery_images_when_asked(tiny, bad_images, monkeypatch, capsys, tmp_path):
    root = tmp_path / "fashioniq"
    shutil.copytree(corpus.FIXTURES / "fashioniq", root)
    victim = root / "images" / "B005X4PL1G.png"  # in the val gallery
    victim.write_bytes(bad_images["corrupt_png"].read_bytes())
    out = tmp_path / "captions.json"
    args = ["captions", "--model", tiny[0], "--data", root, "--split", "val", "--out", out,
            "--max-new-tokens", "2"]
    monkeypatch.setattr(UniFashion, "from_pretrained", classmethod(lambda cls, path, **kw: tiny[1]))
    code, _, err = run(monkeypatch, capsys, *args, "--json")
    assert_one_line_error(code, err, victim)
    code, stdout, err = run(monkeypatch, capsys, *args, "--skip-bad", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["skipped"][0]["item"] == victim.stem and summary["images"] >= 1
    assert victim.stem not in json.loads(out.read_text())


# ---- dataset readers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.BAD_DATASETS))
def test_broken_datasets_are_one_line_errors_naming_file_and_row(name, monkeypatch, capsys, tmp_path):
    fmt, root, where = corpus.BAD_DATASETS[name](tmp_path)
    with pytest.raises(DataError) as e:
        summarize(root)
    assert where in str(e.value) and "\n" not in str(e.value), str(e.value)
    code, _, err = run(monkeypatch, capsys, "data", "inspect", root)
    assert_one_line_error(code, err, where)
