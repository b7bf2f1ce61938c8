"""The service over an index whose files change under it: an item's picture that vanished or is not a
picture (the server's problem: no path in the answer, the path in the log), pictures served with their
real media type, and `index remove` / `add` seen by the running service between requests (built-in and Qdrant)."""
import io
import logging
import shutil
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unifashion.search.catalog_index import CatalogIndex
from unifashion.search.engine import CatalogSearch
from unifashion.search.index_build import build_index, items_from_data
from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

FORMATS = {"png": ("PNG", "image/png"), "jpg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp"),
           "gif": ("GIF", "image/gif"), "bmp": ("BMP", "image/bmp"), "tif": ("TIFF", "image/png")}


@pytest.fixture
def catalog(service_search, small_world, tmp_path):
    """An index of 7 items whose pictures are copies in tmp_path (one per format: PNG, JPEG, WebP, GIF,
    BMP, TIFF, and one more PNG), built without captions, and its CatalogSearch."""
    items = items_from_data(small_world[0])[1::9][:7]
    own = []
    for item, suffix in zip(items, [*FORMATS, "png"]):
        path = tmp_path / "pictures" / f"{item.item_id}.{suffix}"
        path.parent.mkdir(exist_ok=True)
        Image.open(item.image_path).convert("RGB").save(path, FORMATS[suffix][0])
        own.append(replace(item, image_path=str(path)))
    index = build_index(service_search.model, own, tmp_path / "index", model_source="quickstart", captions=False)
    index.warm()
    return CatalogSearch(service_search.model, index), own


def client_for(search, **limits) -> TestClient:
    return TestClient(create_app(search, replace(ServiceLimits(), **limits)), raise_server_exceptions=False)


def one_line(response, status: int, tmp_path) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and str(tmp_path) not in response.text
    assert "/pictures/" not in detail
    return detail


def test_pictures_are_served_with_their_real_media_type(catalog):
    search, items = catalog
    client = client_for(search)
    for item, suffix in zip(items, FORMATS):
        response = client.get(f"/items/{item.item_id}/image")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == FORMATS[suffix][1], suffix
        assert Image.open(io.BytesIO(response.content)).size == Image.open(item.image_path).size


def test_a_picture_file_that_is_not_an_image_is_refused_without_its_path(catalog, tmp_path, caplog):
    search, items = catalog
    (tmp_path / "pictures" / f"{items[0].item_id}.png").write_bytes(b"#!/bin/sh\necho not a picture\n" * 10)
    with caplog.at_level(logging.ERROR, logger="unifashion.service"):
        detail = one_line(client_for(search).get(f"/items/{items[0].item_id}/image"), 500, tmp_path)
    assert items[0].item_id in detail and "not a readable image" in detail
    assert str(tmp_path / "pictures") in caplog.text  # the server's log names the file


def test_a_vanished_picture_is_404_on_its_route_and_500_as_a_reference(catalog, tmp_path, caplog):
    search, items = catalog
    gone = items[0]
    (tmp_path / "pictures" / f"{gone.item_id}.png").unlink()
    client = client_for(search)
    with caplog.at_level(logging.ERROR, logger="unifashion.service"):
        detail = one_line(client.get(f"/items/{gone.item_id}/image"), 404, tmp_path)
    assert detail == f"item {gone.item_id!r} has no image on this server"
    assert str(tmp_path / "pictures") in caplog.text
    png = client.get(f"/items/{items[1].item_id}/image").content
    references = {
        "composed": client.post("/api/search/composed", json={"item_id": gone.item_id, "modify": "in red",
                                                              "rerank": False}),
        "caption": client.post("/api/caption", data={"item_id": gone.item_id}),
        "generate": client.post("/api/generate", json={"item_id": gone.item_id, "steps": 1}),
    }
    for name, response in references.items():
        detail = one_line(response, 500, tmp_path)
        assert gone.item_id in detail and "cannot be read on this server" in detail, name
    # the others are still served
    assert client.post("/api/search/image", files={"file": ("p.png", png, "image/png")}).status_code == 200


def test_a_refusal_naming_a_server_file_hides_it(catalog, tmp_path, monkeypatch):
    from unifashion.errors import DataError

    search, items = catalog

    def broken(*args, **kwargs):
        raise DataError(f"{tmp_path / 'index' / 'segments' / 'x.npy'}: file ended early")

    monkeypatch.setattr(search, "image", broken)
    png = client_for(search).get(f"/items/{items[1].item_id}/image").content
    response = client_for(search).post("/api/search/image", files={"file": ("p.png", png, "image/png")})
    assert one_line(response, 400, tmp_path) == "(a file on the server): file ended early"


# ---- the index changing on disk under the running service ----------------------------------------

def test_removed_and_added_items_are_seen_by_the_next_request(catalog, tmp_path):
    search, items = catalog
    client = client_for(search)
    assert client.get("/health").json()["items"] == 7
    png = client.get(f"/items/{items[2].item_id}/image").content
    photo = {"file": ("p.png", png, "image/png")}
    assert items[2].item_id in [h["item_id"] for h in client.post("/api/search/image", files=photo,
                                                                  data={"k": "7"}).json()["results"]]

    CatalogIndex.open(tmp_path / "index").remove([items[2].item_id])  # what `unifashion index remove` does
    assert client.get("/health").json()["items"] == 6
    found = [h["item_id"] for h in client.post("/api/search/image", files=photo, data={"k": "7"}).json()["results"]]
    assert len(found) == 6 and items[2].item_id not in found
    assert client.get(f"/items/{items[2].item_id}/image").status_code == 404
    text = client.post("/api/search/text", json={"text": "a dress", "k": 7}).json()["results"]
    assert items[2].item_id not in [h["item_id"] for h in text]  # the batcher searches the new view too

    on_disk = CatalogIndex.open(tmp_path / "index")
    on_disk.compact()
    assert client.get("/health").json()["items"] == 6
    assert client.app.state.service.live.reloads == 2


def test_a_reload_that_fails_keeps_the_old_view_and_logs_one_line(catalog, tmp_path, caplog):
    search, items = catalog
    client = client_for(search)
    assert client.get("/health").json()["items"] == 7
    manifest = tmp_path / "index" / "manifest.json"
    shutil.copy(manifest, tmp_path / "manifest.good")
    manifest.write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="unifashion.service"):
        assert client.get("/health").json()["items"] == 7
        assert client.get(f"/items/{items[0].item_id}/image").status_code == 200
    lines = [r.getMessage() for r in caplog.records if "cannot be reopened" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "previous 7 items" in lines[0]
    shutil.copy(tmp_path / "manifest.good", manifest)  # repaired: read again
    CatalogIndex.open(tmp_path / "index").remove([items[0].item_id])
    assert client.get("/health").json()["items"] == 6


@pytest.mark.parametrize("where", ["path", "edge"])
def test_a_qdrant_index_changed_under_the_service_is_seen_by_the_next_request(catalog, tmp_path, where):
    """Qdrant: the service reads the collection, so a change through another handle of it (what `index
    remove` / `add` do; local mode and edge serve one process, so here it is this one) is in the next answer."""
    from unifashion.search.index_build import add_to_index
    from unifashion.search.index_folder import open_index
    from unifashion.search.qdrant_index import QdrantLocation, build_qdrant_index

    search, items = catalog
    root = tmp_path / f"qdrant-{where}"
    index = build_qdrant_index(search.model, items, root, QdrantLocation(**{where: str(tmp_path / f"{where}-db")}),
                               model_source="quickstart", captions=False)
    client = client_for(CatalogSearch(search.model, index))
    assert client.get("/health").json()["items"] == 7
    photo = {"file": ("p.png", client.get(f"/items/{items[2].item_id}/image").content, "image/png")}

    def found() -> list[str]:
        return [h["item_id"] for h in client.post("/api/search/image", files=photo, data={"k": "7"}).json()["results"]]

    assert found()[0] == items[2].item_id
    open_index(root).remove([items[2].item_id])
    assert client.get("/health").json()["items"] == 6
    assert items[2].item_id not in found() and len(found()) == 6
    assert client.get(f"/items/{items[2].item_id}/image").status_code == 404
    add_to_index(search.model, open_index(root), [items[2]])
    assert client.get("/health").json()["items"] == 7 and found()[0] == items[2].item_id
