"""The HTTP service through FastAPI's TestClient: every endpoint's happy path, the bad requests
(each a 4xx/5xx with one line of JSON detail, the server still answering afterwards), and
concurrent searches."""
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

LIMITS = ServiceLimits()


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "photo.png", content_type: str = "image/png") -> dict:
    return {"file": (name, data, content_type)}


@pytest.fixture(scope="module")
def client(service_search):
    with TestClient(create_app(service_search, LIMITS)) as c:
        yield c


def client_with(search, **limits) -> TestClient:
    return TestClient(create_app(search, replace(LIMITS, **limits)), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def item(service_search):
    """An item of the index and its picture as PNG bytes."""
    first = next(iter(service_search.index.items()))
    return first, png(service_search.item_image(first.item_id))


def assert_error(client: TestClient, response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert "Traceback" not in response.text
    assert client.get("/health").status_code == 200  # the server still answers
    return detail


def ids(response) -> list[str]:
    return [h["item_id"] for h in response.json()["results"]]


# ---- happy paths ---------------------------------------------------------------------------------

def test_health_categories_and_page(client, service_search):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["items"] == len(service_search.index) == 24
    assert health["model"] == service_search.index.fingerprint[:12]
    assert health["captions"] is True
    assert client.get("/api/categories").json() == {"categories": service_search.index.categories()}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="results"' in page.text and "/static/app.js" in page.text
    for name in ("api.js", "render.js", "app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "/api/search/composed" in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs")  # served from our files: no CDN, so it works offline
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs-assets/{name}").status_code == 200


def test_text_search_returns_k_hits_sorted_by_score_with_pictures(client, service_search):
    response = client.post("/api/search/text", json={"text": "red floral dress", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "text" and body["took_ms"] >= 0
    scores = [h["score"] for h in body["results"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    hit = body["results"][0]
    item = service_search.index.item(hit["item_id"])
    assert (hit["title"], hit["category"], hit["subcategory"], hit["caption"]) == (
        item.title, item.category, item.subcategory, item.caption)
    picture = client.get(hit["image_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == item.image_ref().load().size


def test_category_filter(client, service_search):
    category = service_search.index.categories()[0]
    response = client.post("/api/search/text", json={"text": "something to wear", "k": 24, "category": category})
    hits = response.json()["results"]
    expected = sum(it.category == category for it in service_search.index.items())
    assert len(hits) == expected and {h["category"] for h in hits} == {category}


def test_image_search_finds_the_item_itself_first(client, item):
    first, data = item
    response = client.post("/api/search/image", files=upload(data), data={"k": "3"})
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "image"
    assert ids(response)[0] == first.item_id


def test_composed_search_differs_from_text_and_image_search(client, item):
    first, data = item
    text = client.post("/api/search/text", json={"text": "in bright red", "k": 10})
    composed = client.post("/api/search/composed", json={"item_id": first.item_id, "modify": "in bright red", "k": 10})
    assert composed.status_code == 200, composed.text
    assert composed.json()["kind"] == "composed" and len(ids(composed)) == 10
    assert ids(composed) != ids(text)
    plain = client.post("/api/search/composed", json={"item_id": first.item_id, "modify": "in bright red", "k": 10,
                                                      "rerank": False})
    assert [h["score"] for h in plain.json()["results"]] != [h["score"] for h in composed.json()["results"]]
    uploaded = client.post("/api/search/image", files=upload(data), data={"k": "10", "modify": "in bright red"})
    assert uploaded.json()["kind"] == "composed"
    assert ids(uploaded) == ids(composed)  # the same reference picture, uploaded or named


def test_image_to_text(client, item):
    response = client.post("/api/search/image-to-text", files=upload(item[1]), data={"k": "4"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "image-to-text" and len(body["results"]) == 4
    assert all(h["caption"] for h in body["results"])


def test_caption_of_an_item_and_of_an_upload(client, item):
    first, data = item
    by_item = client.post("/api/caption", data={"item_id": first.item_id, "style": "short"})
    assert by_item.status_code == 200, by_item.text
    assert by_item.json()["caption"].strip() and by_item.json()["item_id"] == first.item_id
    by_file = client.post("/api/caption", files=upload(data), data={"style": "short"})
    assert by_file.json()["caption"] == by_item.json()["caption"]  # the same picture, greedy decoding


def test_generate_returns_a_png_of_the_generator_size(client, service_search):
    response = client.post("/api/generate", json={"text": "a navy striped shirt", "steps": 2, "seed": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    prefix = "data:image/png;base64,"
    assert body["image"].startswith(prefix)
    picture = Image.open(io.BytesIO(base64.b64decode(body["image"][len(prefix):])))
    size = service_search.model.generator.config.image_size
    assert picture.format == "PNG" and picture.size == (size, size) == (body["width"], body["height"])


def test_classify_probabilities_sum_to_one(client, item):
    comma = client.post("/api/classify", files=upload(item[1]), data={"labels": "dress, sneakers,bag"})
    assert comma.status_code == 200, comma.text
    labels = comma.json()["labels"]
    assert {l["label"] for l in labels} == {"dress", "sneakers", "bag"}
    assert sum(l["probability"] for l in labels) == pytest.approx(1.0, abs=1e-5)
    probabilities = [l["probability"] for l in labels]
    assert probabilities == sorted(probabilities, reverse=True)
    repeated = client.post("/api/classify", files=upload(item[1]), data={"labels": ["dress", "sneakers", "bag"]})
    assert repeated.json()["labels"] == labels


# ---- bad requests --------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body, status, words", [
    ("/api/search/text", {}, 422, "text"),  # no query
    ("/api/search/text", {"text": "   "}, 422, "empty"),
    ("/api/search/text", {"text": "dress", "k": 0}, 422, "k must be between 1 and 100"),
    ("/api/search/text", {"text": "dress", "k": 101}, 422, "k must be between 1 and 100"),
    ("/api/search/text", {"text": "dress", "k": "many"}, 422, "k"),
    ("/api/search/text", {"text": "dress", "category": "spacesuits"}, 422, "unknown category 'spacesuits'"),
    ("/api/search/text", {"text": "x" * 1001}, 422, "limit is 1000"),
    ("/api/search/composed", {"item_id": "no-such-item", "modify": "in red"}, 404, "no item 'no-such-item'"),
    ("/api/search/composed", {"item_id": None, "modify": ""}, 422, "item_id"),
    ("/api/generate", {"text": "a dress", "steps": 51}, 422, "steps must be between 1 and 50"),
    ("/api/generate", {"text": "a dress", "steps": 0}, 422, "steps must be between 1 and 50"),
    ("/api/generate", {"text": "  "}, 422, "needs a text"),
    ("/api/generate", {"item_id": "no-such-item"}, 404, "no item"),
    ("/api/generate", {"text": "a dress", "seed": -1}, 422, "seed"),
])
def test_bad_json_requests(client, path, body, status, words):
    assert words in assert_error(client, client.post(path, json=body), status)


def test_bad_requests_by_form(client, item):
    first, data = item
    assert "file" in assert_error(client, client.post("/api/search/image", data={"k": "3"}), 422)
    assert "not a readable image" in assert_error(
        client, client.post("/api/search/image", files=upload(np.random.default_rng(0).bytes(5000))), 400)
    assert "not a readable image" in assert_error(  # a truncated PNG
        client, client.post("/api/search/image", files=upload(data[: len(data) // 2])), 400)
    assert "not an image" in assert_error(
        client, client.post("/api/search/image", files=upload(b"hello", "notes.txt", "text/plain")), 415)
    assert "empty" in assert_error(client, client.post("/api/search/image", files=upload(b"")), 400)
    assert "k must be" in assert_error(client, client.post("/api/search/image", files=upload(data), data={"k": "0"}), 422)
    assert "unknown category" in assert_error(
        client, client.post("/api/search/image-to-text", files=upload(data), data={"category": "hats?"}), 422)
    assert "no item" in assert_error(client, client.post("/api/caption", data={"item_id": "nope"}), 404)
    assert "either a file or an item_id" in assert_error(client, client.post("/api/caption", data={}), 422)
    assert "unknown caption style" in assert_error(
        client, client.post("/api/caption", data={"item_id": first.item_id, "style": "poetic"}), 422)
    assert "labels are empty" in assert_error(
        client, client.post("/api/classify", files=upload(data), data={"labels": " , "}), 422)
    assert "no item" in assert_error(client, client.get("/items/no-such-item/image"), 404)
    assert "JSON" in assert_error(client, client.post("/api/search/text", content=b"{not json",
                                                      headers={"content-type": "application/json"}), 422)


def test_oversized_uploads_are_refused_before_decoding(service_search, item):
    with client_with(service_search, max_pixels=32 * 32) as small:
        detail = assert_error(small, small.post("/api/search/image", files=upload(item[1])), 413)
        assert "64x64 pixels is over the limit of 1024 pixels" in detail
    noise = png(Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 120, 3), dtype=np.uint8)))
    with client_with(service_search, max_upload_bytes=len(noise) - 1) as tight:
        assert "upload limit" in assert_error(tight, tight.post("/api/search/image", files=upload(noise)), 413)
    with client_with(service_search, max_upload_bytes=1000) as tight:  # far over: refused by Content-Length
        big = tight.post("/api/search/image", files=upload(noise * 4))
        assert "request body over" in assert_error(tight, big, 413)
        chunks = (b"--x\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\n", noise * 4, b"\r\n--x--\r\n")
        chunked = tight.post("/api/search/image", content=iter(chunks),  # no Content-Length: counted
                             headers={"content-type": "multipart/form-data; boundary=x"})
        assert "request body over" in assert_error(tight, chunked, 413)


def test_generation_over_its_time_limit_is_stopped(service_search):
    with client_with(service_search, generation_seconds=0.001) as hurried:
        response = hurried.post("/api/generate", json={"text": "a red dress", "steps": 3})
        assert "time limit" in assert_error(hurried, response, 504)


def test_a_busy_model_answers_503(service_search, item, monkeypatch):
    entered, release = threading.Event(), threading.Event()

    def slow_caption(images, style, **kwargs):
        entered.set()
        release.wait(10)
        return ["slow"]

    monkeypatch.setattr(service_search.model, "caption", slow_caption)
    with client_with(service_search, model_wait_seconds=0) as busy:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(busy.post, "/api/caption", data={"item_id": item[0].item_id})
            assert entered.wait(10)
            assert "busy" in assert_error(busy, busy.post("/api/caption", data={"item_id": item[0].item_id}), 503)
            release.set()
            assert first.result().json()["caption"] == "slow"


def test_an_unexpected_failure_is_a_500_without_traceback(service_search, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(service_search, "text_queries", broken)
    with client_with(service_search) as c:
        detail = assert_error(c, c.post("/api/search/text", json={"text": "dress"}), 500)
        assert "secret" not in detail


# ---- concurrency ---------------------------------------------------------------------------------

def test_concurrent_searches_match_sequential_ones(client, item):
    texts = [f"{colour} {kind}" for colour in ("red", "navy", "olive", "white") for kind in
             ("dress", "sneakers", "backpack", "coat")]  # 16

    def search(text: str) -> list[tuple[str, float]]:
        response = client.post("/api/search/text", json={"text": text, "k": 8})
        assert response.status_code == 200, response.text
        return [(h["item_id"], h["score"]) for h in response.json()["results"]]

    def by_image(_: int) -> list[str]:
        return ids(client.post("/api/search/image", files=upload(item[1]), data={"k": "5"}))

    sequential = [search(t) for t in texts]
    image_alone = by_image(0)
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(search, texts))
        images = list(pool.map(by_image, range(8)))
    for one, other in zip(sequential, parallel):
        assert [i for i, _ in one] == [i for i, _ in other]
        np.testing.assert_allclose([s for _, s in one], [s for _, s in other], rtol=0, atol=1e-5)
    assert all(found == image_alone for found in images)
