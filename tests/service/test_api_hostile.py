"""Hostile and odd inputs at the HTTP API (tests/helpers/hostile_corpus.py): every endpoint that takes an
upload gets every bad image (a 4xx with one line of JSON) and every odd one (200); the free-text
fields get the bad texts (422) and the odd ones (200); malformed JSON, wrong types and missing fields
are a 4xx with one line of JSON. Nothing is a 5xx, and the server answers /health afterwards."""
import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from hostile_corpus import BAD_IMAGES, BAD_TEXTS, ODD_IMAGES, ODD_TEXTS
from unifashion.service.app import create_app

UPLOADS = {  # name: (path, form fields beside the file)
    "search-image": ("/api/search/image", {"k": "3"}),
    "search-image-modify": ("/api/search/image", {"k": "3", "modify": "in bright red"}),
    "image-to-text": ("/api/search/image-to-text", {"k": "3"}),
    "caption": ("/api/caption", {"style": "short"}),
    "classify": ("/api/classify", {"labels": "dress,shirt,sneakers"}),
}


@pytest.fixture(scope="module")
def client(service_search):
    with TestClient(create_app(service_search), raise_server_exceptions=False) as c:
        yield c
        assert c.get("/health").status_code == 200  # after everything below


@pytest.fixture(scope="module")
def item_id(service_search) -> str:
    return next(iter(service_search.index.items())).item_id


@pytest.fixture(scope="module")
def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (180, 30, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def assert_error(response, statuses: tuple[int, ...]) -> str:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "Traceback" not in detail
    return detail


def assert_ok(response) -> dict:
    assert response.status_code == 200, response.text[:300]
    return response.json()


# ---- images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", UPLOADS)
@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_images_are_refused(client, endpoint, name):
    path, fields = UPLOADS[endpoint]
    data = BAD_IMAGES[name]()
    for filename, content_type in (("photo.jpg", "image/jpeg"), ("upload", "application/octet-stream")):
        response = client.post(path, files={"file": (filename, data, content_type)}, data=fields)
        detail = assert_error(response, (400, 413, 415))
        assert filename in detail  # names the upload


@pytest.mark.parametrize("endpoint", UPLOADS)
@pytest.mark.parametrize("name", ODD_IMAGES)
def test_odd_images_are_accepted(client, endpoint, name):
    path, fields = UPLOADS[endpoint]
    body = assert_ok(client.post(path, files={"file": ("photo.png", ODD_IMAGES[name](), "image/png")}, data=fields))
    if endpoint == "caption":
        assert isinstance(body["caption"], str)
    elif endpoint == "classify":
        assert {entry["label"] for entry in body["labels"]} == {"dress", "shirt", "sneakers"}
    else:
        assert len(body["results"]) == 3


# ---- texts ---------------------------------------------------------------------------------------

def text_requests(client, item_id: str, photo: bytes, text: str) -> dict:
    """The same text in every free-text field of the API."""
    return {
        "search-text": client.post("/api/search/text", json={"text": text, "k": 3}),
        "composed": client.post("/api/search/composed", json={"item_id": item_id, "modify": text, "k": 3}),
        "generate": client.post("/api/generate", json={"text": text, "steps": 1}),
        "search-image-modify": client.post("/api/search/image", files={"file": ("p.png", photo, "image/png")},
                                           data={"modify": text, "k": "3"}),
        "classify-labels": client.post("/api/classify", files={"file": ("p.png", photo, "image/png")},
                                       data={"labels": text}),
    }


@pytest.mark.parametrize("name", BAD_TEXTS)
def test_bad_texts_are_422(client, item_id, photo, name):
    for field, response in text_requests(client, item_id, photo, BAD_TEXTS[name]).items():
        if field == "generate" and not BAD_TEXTS[name].strip():
            assert "needs a text" in assert_error(response, (422,))
            continue
        assert_error(response, (422,))


@pytest.mark.parametrize("name", ODD_TEXTS)
def test_odd_texts_are_accepted(client, item_id, photo, name):
    for field, response in text_requests(client, item_id, photo, ODD_TEXTS[name]).items():
        body = assert_ok(response)
        assert field in ("generate", "classify-labels") or len(body["results"]) == 3, field


def test_lone_surrogates_in_json_are_422(client, item_id):
    body = b'{"text": "red \\ud800 dress", "k": 3}'  # valid JSON, but not encodable text
    assert "Unicode" in assert_error(client.post("/api/search/text", content=body,
                                                 headers={"content-type": "application/json"}), (422,))
    body = json.dumps({"item_id": item_id, "modify": "in \udfff red"}).encode()
    assert "Unicode" in assert_error(client.post("/api/search/composed", content=body,
                                                 headers={"content-type": "application/json"}), (422,))


# ---- malformed requests --------------------------------------------------------------------------

JSON_PATHS = ("/api/search/text", "/api/search/composed", "/api/generate")
MALFORMED = [b"{not json", b"", b"null", b"[]", b'"a string"', b"123", b'{"text": "a",}', b"{" * 1000,
             b'{"text": "a"', b"\xff\xfe{}", b'{"text": "red \xff dress"}']


@pytest.mark.parametrize("path", JSON_PATHS)
def test_malformed_json_bodies(client, path):
    for body in MALFORMED:
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(response, (400, 422))
    deep = b"[" * 200_000 + b"]" * 200_000  # deeper than Python's JSON decoder recurses
    assert_error(client.post(path, content=deep, headers={"content-type": "application/json"}), (400, 422))
    assert_error(client.post(path, content=b'{"text": "a red dress"}', headers={"content-type": "text/plain"}), (422,))
    assert_error(client.post(path, content=b'{"text": "a red dress"}'), (422,))  # no content type


@pytest.mark.parametrize("path, body", [
    ("/api/search/text", {}),
    ("/api/search/text", {"text": 5}),
    ("/api/search/text", {"text": ["red", "dress"]}),
    ("/api/search/text", {"text": {"$ne": ""}}),
    ("/api/search/text", {"text": None}),
    ("/api/search/text", {"text": "dress", "k": "many"}),
    ("/api/search/text", {"text": "dress", "k": 1.5}),
    ("/api/search/text", {"text": "dress", "k": 10**30}),
    ("/api/search/text", {"text": "dress", "k": -1}),
    ("/api/search/text", {"text": "dress", "category": 7}),
    ("/api/search/text", {"text": "dress", "category": "../../etc"}),
    ("/api/search/composed", {}),
    ("/api/search/composed", {"modify": "in red"}),
    ("/api/search/composed", {"item_id": ["a"], "modify": "in red"}),
    ("/api/search/composed", {"item_id": "{item}", "modify": "in red", "rerank": "maybe"}),
    ("/api/search/composed", {"item_id": "{item}"}),
    ("/api/generate", {}),
    ("/api/generate", {"text": "a dress", "steps": "many"}),
    ("/api/generate", {"text": "a dress", "steps": 10**9}),
    ("/api/generate", {"text": "a dress", "steps": -3}),
    ("/api/generate", {"text": "a dress", "seed": 2**32}),
    ("/api/generate", {"text": "a dress", "seed": 1e400}),
    ("/api/generate", {"text": 3.5}),
    ("/api/generate", {"item_id": 12}),
])
def test_wrong_types_and_missing_fields_are_422(client, item_id, path, body):
    body = {k: (item_id if v == "{item}" else v) for k, v in body.items()}
    assert_error(client.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}),
                 (422,))


def test_malformed_forms(client, photo):
    upload = {"file": ("p.png", photo, "image/png")}
    for path, fields in UPLOADS.values():
        if path != "/api/caption":  # caption takes a file or an item_id
            assert "file" in assert_error(client.post(path, data=fields), (422,))
        assert_error(client.post(path, data={**fields, "file": "not a file"}), (422,))
        assert_error(client.post(path, content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}),
                     (400, 422))  # no boundary
        assert_error(client.post(path, content=b"garbage without parts",
                                 headers={"content-type": "multipart/form-data; boundary=x"}), (400, 422))
        assert_error(client.post(path, content=b'{"file": "x"}', headers={"content-type": "application/json"}),
                     (422,))
    for fields in ({"k": "x"}, {"k": "0"}, {"k": "1e309"}, {"k": "9" * 50}, {"category": "nope"}, {"rerank": "maybe"}):
        assert_error(client.post("/api/search/image", files=upload, data=fields), (422,))
    assert_error(client.post("/api/classify", files=upload), (422,))  # no labels
    assert_error(client.post("/api/classify", files=upload, data={"labels": ",".join(f"l{i}" for i in range(65))}),
                 (422,))
    assert_error(client.post("/api/caption", files=upload, data={"style": "poetic"}), (422,))
    assert_error(client.post("/api/caption", files=upload, data={"item_id": "x"}), (422,))  # both
    two_files = [("file", ("a.png", photo, "image/png")), ("file", ("b.png", photo, "image/png"))]
    assert client.post("/api/search/image", files=two_files).status_code < 500


def test_unknown_methods_and_paths(client):
    for method, path in (("GET", "/api/search/text"), ("PUT", "/api/generate"), ("DELETE", "/health"),
                         ("POST", "/health"), ("GET", "/api/nothing"), ("POST", "/items/x/image"),
                         ("PATCH", "/api/caption")):
        assert_error(client.request(method, path), (404, 405))
