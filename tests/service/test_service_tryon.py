"""POST /api/tryon through TestClient with a tiny inpainting model: a garment upload or a catalog item
put on a person of the test world's VITON-HD layout, a design from a caption, every refusal one line,
and a server without a try-on model saying so."""
import base64
import io
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

LIMITS = replace(ServiceLimits(), max_steps=3)


@pytest.fixture(scope="module")
def tryon_client(service_search, tiny_tryon_model):
    with TestClient(create_app(service_search, LIMITS, tryon=tiny_tryon_model), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def person(small_world) -> dict:
    """The upload files of one person of the world's VITON-HD test split."""
    root = small_world[0] / "vitonhd" / "test"
    stem = sorted(p.stem for p in (root / "image").glob("*.jpg"))[0]
    files = {"person": root / "image" / f"{stem}.jpg", "mask": root / "agnostic-mask" / f"{stem}_mask.png",
             "pose": root / "openpose_img" / f"{stem}_rendered.png", "garment": root / "cloth" / f"{stem}.jpg"}
    return {name: (path.name, path.read_bytes(), "image/png" if path.suffix == ".png" else "image/jpeg")
            for name, path in files.items()}


def picture(response) -> Image.Image:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"].startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert image.size == (body["width"], body["height"])
    return image


def refused(response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "/tmp" not in detail
    return detail


def test_a_garment_upload_is_put_on(tryon_client, person):
    response = tryon_client.post("/api/tryon", files=person, data={"caption": "a red shirt", "steps": "2", "seed": "3"})
    image = picture(response)
    body = response.json()
    assert body["steps"] == 2 and body["seed"] == 3 and body["design"] is False and body["item_id"] is None
    size = tryon_client.app.state.service.tryon.generator.config.image_size
    assert image.size == (size, size)
    again = tryon_client.post("/api/tryon", files=person, data={"caption": "a red shirt", "steps": "2", "seed": "3"})
    assert picture(again).tobytes() == image.tobytes()  # the seed decides
    no_pose = {k: v for k, v in person.items() if k != "pose"}
    picture(tryon_client.post("/api/tryon", files=no_pose, data={"steps": "1"}))  # pose and caption optional
    assert tryon_client.get("/health").json()["tryon"] is True


def test_a_catalog_item_is_put_on_and_a_design_drawn_from_words(tryon_client, person, service_search):
    item_id = next(iter(service_search.index.items())).item_id
    parts = {k: v for k, v in person.items() if k != "garment"}
    worn = tryon_client.post("/api/tryon", files=parts, data={"item_id": item_id, "steps": "1"})
    picture(worn)
    assert worn.json()["item_id"] == item_id
    design = tryon_client.post("/api/tryon", files=parts, data={"design": "true", "caption": "a navy dress",
                                                                 "steps": "1"})
    picture(design)
    assert design.json()["design"] is True


def test_tryon_refusals_are_one_line(tryon_client, person, service_search):
    post = tryon_client.post
    parts = {k: v for k, v in person.items() if k != "garment"}
    item_id = next(iter(service_search.index.items())).item_id
    assert "either a garment file or an item_id" in refused(post("/api/tryon", files=parts), 422)
    assert "either a garment file or an item_id" in refused(
        post("/api/tryon", files=person, data={"item_id": item_id}), 422)
    assert "send a caption" in refused(post("/api/tryon", files=parts, data={"design": "true"}), 422)
    assert "takes no garment" in refused(post("/api/tryon", files=person, data={"design": "true", "caption": "x"}), 422)
    assert refused(post("/api/tryon", files={k: v for k, v in person.items() if k != "mask"}), 422).startswith("mask")
    assert "steps must be between 1 and 3" in refused(post("/api/tryon", files=person, data={"steps": "9"}), 422)
    assert "no item 'nope'" in refused(post("/api/tryon", files=parts, data={"item_id": "nope"}), 404)
    small = io.BytesIO()
    Image.new("L", (8, 8), 255).save(small, "PNG")
    wrong_size = {**person, "mask": ("m.png", small.getvalue(), "image/png")}
    assert "must cover the person" in refused(post("/api/tryon", files=wrong_size), 422)
    black = io.BytesIO()
    Image.new("L", Image.open(io.BytesIO(person["person"][1])).size, 0).save(black, "PNG")
    assert "nothing to redraw" in refused(post("/api/tryon", files={**person, "mask": ("m.png", black.getvalue(),
                                                                                     "image/png")}), 422)
    assert "not a readable image" in refused(post("/api/tryon", files={**person, "garment": ("g.png", b"junk",
                                                                                            "image/png")}), 400)
    assert refused(post("/api/tryon", files=person, data={"seed": "-1"}), 422).startswith("seed")
    tight = create_app(service_search, replace(LIMITS, max_pixels=100), tryon=tryon_client.app.state.service.tryon)
    with TestClient(tight, raise_server_exceptions=False) as client:  # the uploads' bounds, as everywhere
        assert "over the limit of 100 pixels" in refused(client.post("/api/tryon", files=person), 413)


def test_a_server_without_a_tryon_model_says_so(service_search, person):
    with TestClient(create_app(service_search, LIMITS), raise_server_exceptions=False) as client:
        detail = refused(client.post("/api/tryon", files=person), 503)
        assert detail == "this server has no try-on model (start serve with --tryon-model)"
        assert refused(client.post("/api/tryon"), 503) == detail  # whatever the request
        assert client.get("/health").json()["tryon"] is False


def test_a_model_that_is_not_inpainting_is_refused(service_search):
    from unifashion.errors import ConfigError

    with pytest.raises(ConfigError, match="not an inpainting model"):
        create_app(service_search, LIMITS, tryon=service_search.model)


@pytest.mark.parametrize("config, message", [(None, "not a saved model"),
                                             ('{"generator": {"inpainting": false}}', "not an inpainting try-on model")])
def test_serve_refuses_a_tryon_model_that_is_not_one_before_loading(service_search, tmp_path, config, message):
    from typer.testing import CliRunner

    from unifashion.cli import app

    model, tryon = tmp_path / "model", tmp_path / "tryon"
    for folder, text in ((model, "{}"), (tryon, config)):
        folder.mkdir()
        if text is not None:
            (folder / "config.json").write_text(text)
    result = CliRunner().invoke(app, ["serve", "--index", str(service_search.index.root), "--model", str(model),
                                      "--tryon-model", str(tryon)])
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output
