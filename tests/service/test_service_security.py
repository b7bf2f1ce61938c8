"""The service's security options and bounds: the optional API key, CORS (off unless asked for), the
warning for a non-loopback host without a key, the bounds on captions and on requests waiting for the
model, and path traversal through /items and /static never reading a file it should not."""
import asyncio
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from unifashion.errors import ConfigError
from unifashion.service import app as service_app
from unifashion.service.access import ServiceAccess, exposure_warning
from unifashion.service.app import create_app
from unifashion.service.limits import ServiceLimits

KEY = "k3y-for-tests_0123456789"
SHOP = "https://shop.example"


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


@pytest.fixture(scope="module")
def item(service_search):
    return next(iter(service_search.index.items()))


@pytest.fixture(scope="module")
def keyed(service_search):
    with TestClient(create_app(service_search, access=ServiceAccess(api_key=KEY))) as c:
        yield c


@pytest.fixture(scope="module")
def plain(service_search):
    with TestClient(create_app(service_search)) as c:
        yield c


# ---- the API key ---------------------------------------------------------------------------------

def test_api_and_items_need_the_key(keyed, item):
    for path in ("/api/categories", f"/items/{item.item_id}/image", "/no-such-page"):
        refused = keyed.get(path)
        assert "API key" in assert_json_error(refused, 401)
        assert refused.headers["www-authenticate"] == "Bearer"
    for headers in ({"X-API-Key": KEY + "x"}, {"X-API-Key": KEY[:-1]}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": KEY}, {"X-API-Key": ""}, {"Authorization": "Bearer"},
                    {"X-API-Key": b"\xff\xfe" + KEY.encode()}):  # not ASCII: refused, not a 500
        assert_json_error(keyed.get("/api/categories", headers=headers), 401)
    refused = keyed.post("/api/search/text", json={"text": "a red dress"})
    assert_json_error(refused, 401)
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer  {KEY} "}):
        assert keyed.get("/api/categories", headers=headers).status_code == 200
        found = keyed.post("/api/search/text", json={"text": "a red dress", "k": 2}, headers=headers)
        assert found.status_code == 200 and len(found.json()["results"]) == 2
        picture = keyed.get(f"/items/{item.item_id}/image", headers=headers)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"


def test_health_without_the_key_says_only_ok(keyed, service_search):
    assert keyed.get("/health").json() == {"status": "ok"}
    full = keyed.get("/health", headers={"X-API-Key": KEY}).json()
    assert full["status"] == "ok" and full["items"] == len(service_search.index) and full["limits"]["max_k"] == 100


def test_the_page_and_docs_open_without_the_key(keyed):
    for path in ("/", "/static/api.js", "/static/render.js", "/static/app.js", "/static/style.css", "/docs",
                 "/openapi.json", "/docs-assets/swagger-ui.css"):
        assert keyed.get(path).status_code == 200, path
    script = keyed.get("/static/api.js").text  # the page asks for the key on a 401 and sends it as a header
    assert "status !== 401" in script and '"X-API-Key": apiKey' in script


def test_no_key_by_default(plain, item):
    assert plain.get("/api/categories").status_code == 200
    assert plain.get(f"/items/{item.item_id}/image").status_code == 200
    assert "items" in plain.get("/health").json()


def test_access_options_are_checked():
    for key in ("", "has space", "naïve", "line\nbreak"):
        with pytest.raises(ConfigError, match="API key"):
            ServiceAccess(api_key=key)
    for origin in ("shop.example", "https://shop.example/", "https://shop.example/path", "ftp://shop.example", ""):
        with pytest.raises(ConfigError, match="CORS origin"):
            ServiceAccess(cors_origins=(origin,))
    assert ServiceAccess(cors_origins=("*", "http://localhost:3000")).cors_origins == ("*", "http://localhost:3000")


# ---- CORS ----------------------------------------------------------------------------------------

def preflight(client, origin: str, headers: str = "content-type"):
    return client.options("/api/search/text", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": headers})


def test_cors_is_off_by_default(plain, keyed):
    for client in (plain, keyed):
        responses = [client.get("/health", headers={"Origin": SHOP}),
                     client.get("/api/categories", headers={"Origin": SHOP, "X-API-Key": KEY}),
                     client.post("/api/search/text", json={"text": "dress", "k": 1}, headers={"Origin": SHOP}),
                     preflight(client, SHOP)]
        for response in responses:
            assert response.status_code < 500
            assert not any(name.startswith("access-control-") for name in response.headers), response.headers


def test_cors_only_for_the_given_origins(service_search):
    access = ServiceAccess(api_key=KEY, cors_origins=(SHOP,))
    with TestClient(create_app(service_search, access=access)) as c:
        allowed = c.get("/api/categories", headers={"Origin": SHOP, "X-API-Key": KEY})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SHOP
        refused = c.get("/api/categories", headers={"Origin": SHOP})  # a 401 the page can read
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == SHOP
        ok = preflight(c, SHOP, "content-type,x-api-key")
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == SHOP
        assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
        other = c.get("/api/categories", headers={"Origin": "https://evil.example", "X-API-Key": KEY})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        assert "origin" in assert_json_error(preflight(c, "https://evil.example"), 400)
        assert "headers" in assert_json_error(preflight(c, SHOP, "x-secret"), 400)


# ---- where it listens ----------------------------------------------------------------------------

def test_a_non_loopback_host_without_a_key_is_warned_about(service_search, monkeypatch, capsys):
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert exposure_warning(host, ServiceAccess()) is None
    for host in ("0.0.0.0", "::", "192.168.1.20", "shop.example"):
        line = exposure_warning(host, ServiceAccess())
        assert line.startswith("warning:") and host in line and "API key" in line and "\n" not in line
        assert exposure_warning(host, ServiceAccess(api_key=KEY)) is None
    # serve() prints it before loading anything; here loading and uvicorn are stand-ins
    import uvicorn

    from unifashion.models.unified import UniFashion
    from unifashion.search import index_folder

    started = []
    monkeypatch.setattr(UniFashion, "from_pretrained", staticmethod(lambda path: service_search.model))
    monkeypatch.setattr(index_folder, "open_index", lambda path: service_search.index)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(
        (self.config.host, self.config.port)))
    service_app.serve("model", "index", host="0.0.0.0", port=8123)
    assert started == [("0.0.0.0", 8123)]
    assert capsys.readouterr().err.strip().startswith("warning: listening on 0.0.0.0 without an API key")
    service_app.serve("model", "index", port=8124)  # the default: 127.0.0.1, no warning
    assert started[-1] == ("127.0.0.1", 8124) and capsys.readouterr().err == ""


def test_serve_command_rejects_bad_access_options_before_loading(tmp_path):
    from typer.testing import CliRunner

    from unifashion.cli import app

    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "none"), "--cors-origin", "shop.example"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert "CORS origin 'shop.example'" in str(result.exception)
    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "none")], env={"UNIFASHION_API_KEY": "a b"})
    assert isinstance(result.exception, ConfigError) and "API key" in str(result.exception)


# ---- bounds on the heavy calls -------------------------------------------------------------------

def test_requests_beyond_max_waiting_are_refused_at_once(service_search, item, monkeypatch):
    entered, release = threading.Event(), threading.Event()

    def slow_caption(images, style, **kwargs):
        entered.set()
        release.wait(20)
        return ["slow"]

    monkeypatch.setattr(service_search.model, "caption", slow_caption)
    app = create_app(service_search, replace(ServiceLimits(), max_waiting=1, model_wait_seconds=20))
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(2) as pool:
        caption = {"item_id": item.item_id}
        running = pool.submit(c.post, "/api/caption", data=caption)
        assert entered.wait(20)
        waiting = pool.submit(c.post, "/api/generate", json={"text": "a red dress", "steps": 1})
        deadline = time.monotonic() + 20
        while app.state.service.model_turns.waiting < 1:
            assert time.monotonic() < deadline and not waiting.done(), "the second request did not wait"
            time.sleep(0.01)
        start = time.perf_counter()
        refused = c.post("/api/caption", data=caption)
        assert time.perf_counter() - start < 5  # at once, not after model_wait_seconds
        assert "wait for it" in assert_json_error(refused, 503) and refused.headers["retry-after"]
        assert_json_error(c.post("/api/generate", json={"text": "a dress", "steps": 1}), 503)
        release.set()
        assert running.result().json()["caption"] == "slow"
        assert waiting.result().status_code == 200  # it got its turn
        assert app.state.service.model_turns.waiting == 0


def test_captions_are_capped_in_tokens(service_search, item, monkeypatch):
    calls = []
    real = service_search.model.caption

    def spy(images, style, **kwargs):
        calls.append(kwargs.get("max_new_tokens"))
        return real(images, style, **kwargs)

    monkeypatch.setattr(service_search.model, "caption", spy)
    lm = service_search.model.captioner.lm
    produced, generate = [], lm.generate  # the token ids decoded (a random LM's text does not re-tokenise to them)
    monkeypatch.setattr(lm, "generate", lambda *a, **k: produced.append(generate(*a, **k)) or produced[-1])
    model_cap = service_search.model.captioner.config.max_new_tokens  # 6 for the test model
    for limit, passed, cap in ((2, 2, 2), (1000, None, model_cap)):  # None: the model's own cap applies
        with TestClient(create_app(service_search, replace(ServiceLimits(), caption_tokens=limit))) as c:
            response = c.post("/api/caption", data={"item_id": item.item_id, "style": "short"})
            assert response.status_code == 200, response.text
            assert calls[-1] == passed
            assert produced[-1].shape[1] <= cap


def test_captions_are_capped_in_time(service_search, item, monkeypatch):
    """The service hands its caption deadline to the model, and a deadline really cuts decoding short."""
    seen = []
    real = service_search.model.caption

    def spy(images, style, **kwargs):
        seen.append(kwargs.get("max_seconds"))
        return real(images, style, **kwargs)

    monkeypatch.setattr(service_search.model, "caption", spy)
    with TestClient(create_app(service_search, replace(ServiceLimits(), caption_seconds=7.5))) as c:
        assert c.post("/api/caption", data={"item_id": item.item_id}).status_code == 200
    assert seen == [7.5]

    captioner = service_search.model.captioner
    prefix = torch.randn(1, 4, captioner.lm.get_input_embeddings().weight.shape[1])  # (1, 4, D) a soft prompt
    produced, generate = [], captioner.lm.generate  # the ids decoded (a random LM's text does not re-tokenise to them)
    monkeypatch.setattr(captioner.lm, "generate", lambda *a, **k: produced.append(generate(*a, **k)) or produced[-1])
    untimed = captioner.generate(prefix, "short", max_new_tokens=24)[0]
    timed = captioner.generate(prefix, "short", max_new_tokens=24, max_seconds=0.0)[0]
    n = [ids.shape[1] for ids in produced]
    assert n[0] > 3, untimed  # the premise: without a deadline it writes several tokens
    assert n[1] <= 2 and produced[0][0, :n[1]].tolist() == produced[1][0].tolist()  # stopped early, same greedy start


# ---- path traversal ------------------------------------------------------------------------------

def raw_get(app, raw_path: bytes) -> tuple[int, dict, bytes]:
    """GET with this exact request target, as uvicorn passes it on (path percent-decoded once, dots
    kept): no client library in between to normalise it."""
    from urllib.parse import unquote

    target = raw_path.split(b"?")[0]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(target.decode("latin-1"), encoding="latin-1"), "raw_path": target, "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    sent: list[dict] = []
    requested = False

    async def receive():
        nonlocal requested
        if requested:  # the request was read: the client waits (a response may listen for a disconnect)
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode("latin-1") for k, v in start["headers"]}, body


SECRET_FILES = {  # outside the catalog and static folders: none may come back
    Path("/etc/passwd"): b"root:",
    Path(service_app.__file__): b"def create_app",
    Path(__file__).resolve().parents[2] / "pyproject.toml": b"[project]",
}

TRAVERSALS = [
    b"/items/../../etc/passwd/image",
    b"/items/../../../../../../etc/passwd",
    b"/items/..%2f..%2f..%2f..%2fetc%2fpasswd/image",
    b"/items/%2e%2e/%2e%2e/%2e%2e/etc/passwd/image",
    b"/items/%252e%252e%252f%252e%252e%252fetc%252fpasswd/image",  # double-encoded
    b"/items//etc/passwd/image",
    b"/items/%2Fetc%2Fpasswd/image",
    b"/items/etc/passwd%00/image",
    b"/items/%00/image",
    b"/items/..%5c..%5c..%5cetc%5cpasswd/image",
    b"/items/{ITEM}/../../../../../../etc/passwd/image",
    b"/items/{ITEM}%00../../../etc/passwd/image",
    b"/static/../app.py",
    b"/static/../../service/app.py",
    b"/static/..%2fapp.py",
    b"/static/%2e%2e/app.py",
    b"/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    b"/static/%252e%252e/app.py",
    b"/static//etc/passwd",
    b"/static/%2Fetc%2Fpasswd",
    b"/static/..\\app.py",
    b"/static/app.js%00.png",
    b"/static/%00",
    b"/static/" + b"../" * 12 + b"etc/passwd",
    b"/docs-assets/../../../../../../etc/passwd",
    b"/..%2f..%2f..%2fetc/passwd",
    b"/%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("keyed_app", [False, True], ids=["no-key", "key"])
def test_path_traversal_never_reads_outside(service_search, item, keyed_app):
    access = ServiceAccess(api_key=KEY) if keyed_app else ServiceAccess()
    app = create_app(service_search, access=access)
    secrets = [(path, marker) for path, marker in SECRET_FILES.items() if path.is_file()]
    assert len(secrets) >= 2
    for target in TRAVERSALS:
        target = target.replace(b"{ITEM}", item.item_id.encode())
        status, headers, body = raw_get(app, target)
        assert status in (400, 401, 404, 405, 422), (target, status, body[:200])
        assert headers["content-type"].startswith("application/json"), (target, headers)
        assert not any(marker in body for _, marker in secrets), target
    status, _, body = raw_get(app, b"/static/api.js")  # the static folder itself is still served
    assert status == 200 and b"apiKey" in body
    app.state.service.text_batcher.close()


def test_item_pictures_only_for_items_in_the_index(plain, service_search, small_world, item):
    """Another picture of the world (not in the index), an indexed item's own file path, and ids with
    '..' are all 404 — even though the files exist."""
    from unifashion.search.index_build import items_from_data

    indexed = {i.item_id for i in service_search.index.items()}
    outside = next(i for i in items_from_data(small_world[0]) if i.item_id not in indexed)
    assert Path(outside.image_path).is_file()
    for item_id in (outside.item_id, str(Path(item.image_path).resolve()), f"{item.item_id}/..",
                    f"../{item.item_id}", f"{item.item_id}\0", str(Path(outside.image_path).resolve())):
        response = plain.get(f"/items/{quote(item_id, safe='')}/image")
        assert "no item" in assert_json_error(response, 404)
    picture = plain.get(f"/items/{item.item_id}/image")
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.content)).size == service_search.item_image(item.item_id).size


def test_the_app_can_be_started_again(service_search):
    """Found by schemathesis: a second lifespan (the app served again) found the text batcher closed (500)."""
    app = create_app(service_search)
    for _ in range(2):
        with TestClient(app) as c:
            assert c.post("/api/search/text", json={"text": "a red dress", "k": 2}).status_code == 200


def test_generation_steps_default_to_at_most_max_steps(service_search):
    with TestClient(create_app(service_search, replace(ServiceLimits(), max_steps=2))) as c:
        response = c.post("/api/generate", json={"text": "a navy coat"})  # the default (20) would be over
        assert response.status_code == 200, response.text
        assert response.json()["steps"] == 2
        schema = c.get("/openapi.json").json()["components"]["schemas"]
        steps = next(b for b in schema["GenerateRequest"]["properties"]["steps"]["anyOf"] if b["type"] == "integer")
        assert (steps["minimum"], steps["maximum"]) == (1, 2)  # the limits, documented
        assert schema["TextSearch"]["properties"]["k"]["maximum"] == 100
