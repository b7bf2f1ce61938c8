"""Inputs the service once read too kindly: a blank `modify` on an image search, booleans as numbers,
and item ids of any length echoed whole."""
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

LIMITS = ServiceLimits()


@pytest.fixture(scope="module")
def client(service_search):
    with TestClient(create_app(service_search, LIMITS), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def photo(service_search) -> bytes:
    buffer = io.BytesIO()
    service_search.item_image(next(iter(service_search.index.items())).item_id).save(buffer, "PNG")
    return buffer.getvalue()


def refused(response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 200
    return detail


@pytest.mark.parametrize("modify", ["", "   ", "\t\n"])
def test_an_empty_or_blank_modify_is_422_like_composed_search(client, photo, modify):
    upload = {"file": ("p.png", photo, "image/png")}
    detail = refused(client.post("/api/search/image", files=upload, data={"modify": modify}))
    assert detail == "the modification is empty"
    plain = client.post("/api/search/image", files=upload, data={"k": "3"})  # absent: an image search
    assert plain.status_code == 200 and plain.json()["kind"] == "image"
    composed = client.post("/api/search/image", files=upload, data={"modify": "in red", "k": "3"})
    assert composed.status_code == 200 and composed.json()["kind"] == "composed"


@pytest.mark.parametrize("path, body, field", [
    ("/api/search/text", {"text": "a dress", "k": True}, "k"),
    ("/api/search/text", {"text": "a dress", "k": False}, "k"),
    ("/api/search/text", {"text": "a dress", "k": "3"}, "k"),
    ("/api/search/text", {"text": "a dress", "k": 3.0}, "k"),
    ("/api/search/text", {"text": 7, "k": 3}, "text"),
    ("/api/search/composed", {"item_id": "x", "modify": "in red", "k": True}, "k"),
    ("/api/search/composed", {"item_id": "x", "modify": "in red", "rerank": 1}, "rerank"),
    ("/api/generate", {"text": "a dress", "steps": True}, "steps"),
    ("/api/generate", {"text": "a dress", "seed": True}, "seed"),
])
def test_booleans_and_strings_are_not_numbers(client, path, body, field):
    assert refused(client.post(path, json=body)).startswith(f"{field}: ")


def test_item_ids_are_bounded_and_never_echoed_long(client, service_search):
    huge = "x" * 100_000
    path = refused(client.get(f"/items/{'x' * 60_000}/image"))  # httpx refuses URLs over 64 KiB
    assert path == f"item_id is 60000 characters; the limit is {LIMITS.max_item_id_chars}"
    requests = {
        "composed": client.post("/api/search/composed", json={"item_id": huge, "modify": "in red"}),
        "generate": client.post("/api/generate", json={"item_id": huge, "steps": 1}),
        "caption": client.post("/api/caption", data={"item_id": huge}),
    }
    for name, response in requests.items():
        detail = refused(response)
        assert detail == f"item_id is 100000 characters; the limit is {LIMITS.max_item_id_chars}", name
    unknown = "y" * LIMITS.max_item_id_chars  # within the limit, not in the index: 404 with a short prefix
    detail = refused(client.post("/api/search/composed", json={"item_id": unknown, "modify": "in red"}), 404)
    assert detail == f"no item {'y' * 40!r}... in the index"
    assert refused(client.get(f"/items/{unknown}/image"), 404) == detail
    item_id = next(iter(service_search.index.items())).item_id
    assert client.get(f"/items/{item_id}/image").status_code == 200
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ComposedSearch"]
    assert schema["properties"]["item_id"]["maxLength"] == LIMITS.max_item_id_chars
