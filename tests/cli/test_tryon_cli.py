"""`unifashion tryon` on a tiny inpainting model: a person of the small world's VITON-HD layout (or a
photo with its mask) and a garment -> a PNG of the generator's size; one-line errors."""
import json
import shutil

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unifashion.cli import app
from unifashion.errors import UnifashionError
from unifashion.models.unified import UniFashion

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(inpainting try-on model, plain model) saved from the tiny config."""
    root = tmp_path_factory.mktemp("tryon_models")
    torch.manual_seed(0)
    plain = UniFashion.from_config("tiny")
    plain.save_pretrained(root / "plain")
    plain.make_generator_inpainting()
    plain.save_pretrained(root / "tryon")
    return root / "tryon", root / "plain"


@pytest.fixture(scope="module")
def inputs(small_world):
    test = small_world[0] / "vitonhd" / "test"
    person = sorted((test / "image").iterdir())[0]
    return person, sorted((test / "cloth").iterdir())[0], test / "agnostic-mask" / f"{person.stem}_mask.png"


def error_of(*args) -> str:
    result = runner.invoke(app, ["tryon", *map(str, args)])
    assert isinstance(result.exception, UnifashionError), (result.exception, result.output)
    assert "\n" not in str(result.exception)
    return str(result.exception)


def test_help():
    result = runner.invoke(app, ["tryon", "--help"])
    assert result.exit_code == 0 and "Usage" in result.output and "--design" in result.output


def test_tryon_writes_a_png_of_the_generators_size(models, inputs, tmp_path):
    person, garment, mask = inputs
    size = UniFashion.from_pretrained(models[0]).generator.config.image_size
    out = tmp_path / "on.png"
    result = runner.invoke(app, ["tryon", "--model", str(models[0]), "--person", str(person), "--garment", str(garment),
                                 "--caption", "a red shirt", "--steps", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout: the JSON alone
    assert summary["image"] == str(out) and summary["size"] == [size, size] and summary["design"] is False
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (size, size)
    assert [p.name for p in tmp_path.iterdir()] == ["on.png"]  # written whole, no temporary left

    elsewhere = tmp_path / "person.jpg"  # outside a VITON-HD layout: the mask says what to redraw
    shutil.copy(person, elsewhere)
    pose = next((person.parent.parent / "openpose_img").glob(f"{person.stem}*"))
    result = runner.invoke(app, ["tryon", "--model", str(models[0]), "--person", str(elsewhere), "--mask", str(mask),
                                 "--pose", str(pose), "--design", "--caption", "a blue dress", "--steps", "1", "--out",
                                 str(tmp_path / "design.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "design.png").size == (size, size)
    assert "no mask given" in error_of("--model", models[0], "--person", elsewhere, "--garment", garment,
                                       "--out", tmp_path / "x.png")


def test_tryon_bad_requests_are_one_line_before_the_model_loads(models, inputs, tmp_path):
    person, garment, _ = inputs
    out = tmp_path / "x.png"
    common = ("--model", models[0], "--person", person, "--out", out)
    assert error_of(*common, "--design").startswith("--design draws the garment from --caption alone")
    assert "give --garment" in error_of(*common)
    assert error_of(*common, "--garment", garment, "--guidance-scale", "inf").startswith("--guidance-scale inf")
    assert ".png" in error_of("--model", models[0], "--person", person, "--garment", garment, "--out", tmp_path / "x.jpg")
    message = error_of("--model", models[1], "--person", person, "--garment", garment, "--out", out)
    assert message.startswith(f"--model {models[1]}: not an inpainting try-on model")
    assert not out.exists()
