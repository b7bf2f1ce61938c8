"""The HTTP search service: a CatalogSearch behind a JSON API, and the web page that uses it.

Endpoints (OpenAPI at /openapi.json; its Swagger UI page at /docs, served from our own files):
    GET  /                          the web page (static files under service/static/)
    GET  /health                    status, item count, model fingerprint prefix, limits
    GET  /api/categories            the index's categories
    POST /api/search/text           {text, k, category}
    POST /api/search/image          multipart: file [, modify, k, category, rerank]: image -> image, or
                                    composed (the photo changed by the words) when `modify` is given
    POST /api/search/composed       {item_id, modify, k, category, rerank}: "this one, but ..."
    POST /api/search/image-to-text  multipart: file [, k, category]: items whose caption fits the photo
    POST /api/caption               multipart: file or item_id [, style]
    POST /api/generate              {text, item_id, steps, seed} -> a PNG as a data URL
    POST /api/classify              multipart: file, labels (comma-separated, or the field repeated)
    GET  /items/{item_id}/image     the item's picture

Every error is JSON {"detail": "one line"}: 4xx for what the caller can fix (400 unreadable upload or
a model refusal, 401 no or wrong API key, 404 unknown item, 413 too large, 415 not an image, 422 a bad
value), 503/504 when the model is busy or a generation runs out of time, 500 without a traceback for
the rest.

Access (ServiceAccess): by default the service listens on 127.0.0.1 only, asks for no key and sends no
CORS headers (so pages from other origins cannot read its answers). With an API key, /api/* and
/items/* (and any unknown path) need `X-API-Key: KEY` or `Authorization: Bearer KEY`, else 401; the
web page, its static files, /docs and /openapi.json stay open, and /health without the key answers only
{"status": "ok"} (the item count, model and limits need the key). With CORS origins, pages from exactly
those origins may call the API (preflight included; the key is still needed).

Concurrency: searches run in parallel in FastAPI's thread pool; they only read the index, warmed
before the app is made. Text searches that arrive together are encoded and searched as one batch
(service/batching.py). The heavy model calls (caption, generate) take turns behind one lock; at
most `max_waiting` wait for it, each for a bounded time, and the rest are refused at once (503).
A generation is bounded in steps and in time (checked at every step: 504); a caption in tokens
(`caption_tokens`) and in time (`caption_seconds`: decoding stops and the caption comes back short).
"""
from __future__ import annotations

import base64
import hmac
import io
import ipaddress
import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from unifashion.search.engine import CatalogSearch, SearchHit, TextQuery
from unifashion.data.samples import to_rgb
from unifashion.errors import ConfigError, UnifashionError
from unifashion.models.captioner import STYLES
from unifashion.service.batching import TextSearchBatcher

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # what PIL may decode from an upload
SERVED_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small form fields beside an upload
IMAGE_CACHE = {"Cache-Control": "public, max-age=3600"}
DEFAULT_STEPS = 20  # denoising steps of a generation that does not say (at most the service's max_steps)
OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})  # answered without the API key
OPEN_PREFIXES = ("/static/", "/docs-assets/")  # the page's files and the docs page's
ORIGIN = re.compile(r"https?://[^\s/?#]+")  # scheme://host[:port], no path: what a browser sends as Origin


@dataclass(frozen=True)
class ServiceLimits:
    max_upload_bytes: int = 10 * 2**20  # an uploaded image file (the request body may add FORM_OVERHEAD)
    max_pixels: int = 40_000_000  # width x height of an upload, read from its header before decoding
    max_k: int = 100  # results per search
    max_text_chars: int = 1000  # a query, a modification or a prompt
    max_labels: int = 64  # zero-shot classification labels per request
    max_steps: int = 50  # denoising steps per generation
    generation_seconds: float = 60.0  # a generation not finished this long after its request is aborted (504)
    model_wait_seconds: float = 30.0  # a caption waiting longer than this for the model is refused (503)
    max_waiting: int = 8  # captions/generations waiting for the model, at most; more are refused at once (503)
    caption_tokens: int = 48  # tokens per caption, at most (the model's own cap when lower)
    caption_seconds: float = 20.0  # decoding stops after this long: the caption comes back cut short
    text_batch: int = 16  # concurrent text searches encoded and searched together, at most


@dataclass(frozen=True)
class ServiceAccess:
    """Who may use the service. The default: no key, no CORS (meant for 127.0.0.1)."""
    api_key: str | None = None  # when set, /api/* and /items/* need `X-API-Key: KEY` or `Authorization: Bearer KEY`
    cors_origins: tuple[str, ...] = ()  # origins (https://shop.example:8443) whose pages may call the API; "*": any

    def __post_init__(self) -> None:
        key = self.api_key
        if key is not None and not (key and key.isascii() and key.isprintable() and " " not in key):
            raise ConfigError("the API key must be non-empty printable ASCII without spaces")
        for origin in self.cors_origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ConfigError(f"CORS origin {origin!r} is not scheme://host[:port] (e.g. https://shop.example)")

    def allows(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """True when no key is set, or the raw ASGI headers carry it (compared in constant time)."""
        if self.api_key is None:
            return True
        key = self.api_key.encode("ascii")
        for name, value in headers:
            if name == b"x-api-key" and hmac.compare_digest(value.strip(), key):
                return True
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
                    return True
        return False


def exposure_warning(host: str, access: ServiceAccess) -> str | None:
    """One line when `host` is reachable from other machines and no API key is set, else None."""
    if access.api_key is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name other than localhost: may be reachable from elsewhere
    return (f"warning: listening on {host} without an API key: anyone who can reach this port can use the "
            f"service (set UNIFASHION_API_KEY)")


# ---- request and response bodies ----------------------------------------------------------------

class Hit(BaseModel):
    item_id: str
    score: float
    title: str
    category: str
    subcategory: str
    caption: str  # the model's gallery caption of the item
    product_id: str
    image_url: str


class SearchResponse(BaseModel):
    kind: str  # text | image | composed | image-to-text
    results: list[Hit]
    took_ms: float


class TextSearch(BaseModel):
    text: str
    k: int = 10
    category: str | None = None


class ComposedSearch(BaseModel):
    item_id: str  # the reference: an item of the index
    modify: str  # what to change about it ("in red", "shorter sleeves")
    k: int = 10
    category: str | None = None
    rerank: bool = True  # re-score the candidates with their gallery captions


class GenerateRequest(BaseModel):
    text: str | None = None
    item_id: str | None = None  # a reference item; with text, the item changed by the words
    steps: int | None = None  # default: 20, or the service's max_steps when lower
    seed: int = Field(0, ge=0, lt=2**32)


class GenerateResponse(BaseModel):
    image: str  # data:image/png;base64,...
    width: int
    height: int
    steps: int
    seed: int
    took_ms: float


class CaptionResponse(BaseModel):
    caption: str
    style: str
    item_id: str | None
    took_ms: float


class LabelProbability(BaseModel):
    label: str
    probability: float


class ClassifyResponse(BaseModel):
    labels: list[LabelProbability]  # sorted by probability
    took_ms: float


class Status(BaseModel):
    status: str  # what /health tells a caller without the API key (when one is set)


class Health(BaseModel):
    status: str
    items: int
    model: str  # the model fingerprint's first 12 hex digits
    captions: bool  # the index has gallery captions (composed re-ranking, image -> text)
    generator_size: int  # side of the generated pictures in pixels
    limits: dict


class Categories(BaseModel):
    categories: list[str]


class ErrorBody(BaseModel):
    detail: str


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 500, 503, 504)}


# ---- the app ------------------------------------------------------------------------------------

class _BodyLimit:
    """Refuses request bodies over `max_bytes` with a 413, by Content-Length or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body over {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, detail)  # raised inside body parsing: FastAPI passes it on
            return message

        await self.app(scope, counted, send)


class _KeyCheck:
    """Answers 401 to requests without the API key, except for the open paths (the page, /health, docs)."""

    def __init__(self, app: ASGIApp, access: ServiceAccess):
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]) or self.access.allows(scope["headers"]):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": "this needs the service's API key: send the header X-API-Key: KEY "
                                      "(or Authorization: Bearer KEY)"},
                           status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class _Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in our error format (JSON, one line)."""

    def preflight_response(self, request_headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        detail = bytes(response.body).decode("latin-1")  # "Disallowed CORS origin, headers"
        return JSONResponse({"detail": f"CORS preflight refused: {detail}"}, status_code=400,
                            headers={"Vary": "Origin"})


class _ModelTurns:
    """The heavy model calls (caption, generate) take turns: one runs, at most `max_waiting` wait for it
    (each up to its own wait), and the rest are refused at once with a 503."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.waiting = 0
        self._model = threading.Lock()
        self._count = threading.Lock()

    @contextmanager
    def turn(self, wait_s: float) -> Iterator[None]:
        if not self._model.acquire(blocking=False):
            with self._count:
                if self.waiting >= self.max_waiting:
                    raise HTTPException(503, f"the model is busy and {self.waiting} more requests wait for it "
                                             f"(the limit); try again shortly", headers={"Retry-After": "5"})
                self.waiting += 1
            try:
                acquired = self._model.acquire(timeout=max(wait_s, 0.0))
            finally:
                with self._count:
                    self.waiting -= 1
            if not acquired:
                raise HTTPException(503, "the model is busy with another caption or generation; try again shortly",
                                    headers={"Retry-After": "5"})
        try:
            yield
        finally:
            self._model.release()


class _TimeUp(Exception):
    def __init__(self, step: int, total: int):
        self.step, self.total = step, total


def create_app(search: CatalogSearch, limits: ServiceLimits = ServiceLimits(),
               access: ServiceAccess = ServiceAccess()) -> FastAPI:
    """The service for `search`, whose index should be warmed (`search.index.warm()`) beforehand."""
    text_batcher = TextSearchBatcher(search, limits.text_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        text_batcher.start()  # a no-op the first time; after a shutdown (the app served again), a new worker
        yield
        text_batcher.close()

    app = FastAPI(title="UniFashion catalog search", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Text, image and composed ('this one, but ...') search over a catalog, "
                              "captions, zero-shot classification and generation, by one UniFashion model.")
    # the API docs page from Swagger UI's files in the swagger-ui-bundle package: FastAPI's default
    # page loads them from a CDN, which leaves it blank on a machine without internet
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API docs",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png")

    # middleware, innermost first: the body limit, then the key check, then CORS (so that preflights
    # and 401s carry the CORS headers a browser needs to read them)
    app.add_middleware(_BodyLimit, max_bytes=limits.max_upload_bytes + FORM_OVERHEAD)
    if access.api_key is not None:
        app.add_middleware(_KeyCheck, access=access)
    if access.cors_origins:
        app.add_middleware(_Cors, allow_origins=list(access.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization"], max_age=600)
    app.state.search = search
    app.state.limits = limits
    app.state.text_batcher = text_batcher
    turns = app.state.model_turns = _ModelTurns(limits.max_waiting)  # caption and generate take turns on the model
    # captions: the model's own token cap, or the service's when lower
    caption_kwargs = ({"max_new_tokens": limits.caption_tokens}
                      if limits.caption_tokens < search.model.captioner.config.max_new_tokens else {})
    known_categories = search.index.categories()
    generator_size = int(search.model.generator.config.image_size)

    # ---- checks: each raises an HTTPException whose detail is one line

    def check_k(k: int) -> None:
        if not 1 <= k <= limits.max_k:
            raise HTTPException(422, f"k must be between 1 and {limits.max_k}, got {k}")

    def check_text(text: str | None, what: str) -> str:
        text = (text or "").strip()
        if not text:
            raise HTTPException(422, f"{what} is empty")
        if len(text) > limits.max_text_chars:
            raise HTTPException(422, f"{what} is {len(text)} characters; the limit is {limits.max_text_chars}")
        if not _encodable(text):  # JSON's "\ud800": a lone surrogate, which no tokenizer can take
            raise HTTPException(422, f"{what} is not valid Unicode (a lone surrogate)")
        return text

    def check_category(category: str | None) -> list[str] | None:
        if not category:
            return None
        if category not in known_categories:
            raise HTTPException(422, f"unknown category {category!r} (known: {', '.join(known_categories) or 'none'})")
        return [category]

    def check_item(item_id: str) -> None:
        if item_id not in search.index:
            raise HTTPException(404, f"no item {item_id!r} in the index")

    def read_upload(upload: UploadFile) -> Image.Image:
        """The uploaded picture as RGB; its size is read from the header and refused before decoding."""
        name = upload.filename or "the upload"
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        if declared and not (declared.startswith("image/") or declared == "application/octet-stream"):
            raise HTTPException(415, f"{name}: {declared} is not an image (send PNG, JPEG, WebP, GIF, BMP or TIFF)")
        data = upload.file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise HTTPException(413, f"{name}: over the upload limit of {limits.max_upload_bytes} bytes")
        if not data:
            raise HTTPException(400, f"{name}: empty file")
        try:
            with warnings.catch_warnings():  # PIL warns on huge headers; they are refused just below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                picture = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
            width, height = picture.size  # from the header: nothing is decoded yet
            if width * height > limits.max_pixels:
                raise HTTPException(413, f"{name}: {width}x{height} pixels is over the limit of "
                                         f"{limits.max_pixels} pixels")
            if width < 1 or height < 1:
                raise HTTPException(400, f"{name}: the image has no pixels ({width}x{height})")
            picture.load()  # a full decode (an animation's first frame): truncation is caught here
            try:
                picture = ImageOps.exif_transpose(picture)  # phone photos: turned as their EXIF says
            except Exception:  # noqa: BLE001 - PIL raises many types on hostile EXIF: keep the pixels as stored
                pass
            return to_rgb(picture, name)  # 16-bit grey scaled, CMYK converted, transparency on white
        except Image.DecompressionBombError:
            raise HTTPException(413, f"{name}: too many pixels to decode") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError):
            raise HTTPException(400, f"{name}: not a readable image (send PNG, JPEG, WebP, GIF, BMP or TIFF)") from None

    def hits(results: Sequence[SearchHit]) -> list[Hit]:
        return [Hit(**asdict(h), image_url=_image_url(h.item_id)) for h in results]

    def response(kind: str, results: Sequence[SearchHit], start: float) -> SearchResponse:
        return SearchResponse(kind=kind, results=hits(results), took_ms=_ms_since(start))

    # ---- errors as JSON with one line of detail

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(UnifashionError)
    async def _refused(request: Request, exc: UnifashionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}, status_code=400)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (the server's log has the details)"}, status_code=500)

    # ---- the page and the facts

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=Health | Status)
    def health(request: Request) -> Health | Status:
        if not access.allows(request.scope["headers"]):
            return Status(status="ok")  # with an API key set, the rest is for those who send it
        return Health(status="ok", items=len(search.index), model=search.index.fingerprint[:12],
                      captions=search.index.has_captions, generator_size=generator_size, limits=asdict(limits))

    @app.get("/api/categories", response_model=Categories)
    def categories() -> Categories:
        return Categories(categories=known_categories)

    # ---- searches (parallel)

    @app.post("/api/search/text", response_model=SearchResponse, responses=ERRORS)
    def search_text(body: TextSearch) -> SearchResponse:
        start = time.perf_counter()
        check_k(body.k)
        text = check_text(body.text, "the search text")
        categories = check_category(body.category)
        query = TextQuery(text, body.k, tuple(categories) if categories is not None else None)
        return response("text", text_batcher(query), start)

    @app.post("/api/search/image", response_model=SearchResponse, responses=ERRORS)
    def search_image(file: Annotated[UploadFile, File()], modify: Annotated[str | None, Form()] = None,
                     k: Annotated[int, Form()] = 10, category: Annotated[str | None, Form()] = None,
                     rerank: Annotated[bool, Form()] = True) -> SearchResponse:
        start = time.perf_counter()
        check_k(k)
        categories = check_category(category)
        if modify is not None and modify.strip():
            text = check_text(modify, "the modification")
            picture = read_upload(file)
            return response("composed", search.composed([picture], [text], k, rerank=rerank,
                                                        categories=categories)[0], start)
        return response("image", search.image([read_upload(file)], k, categories)[0], start)

    @app.post("/api/search/composed", response_model=SearchResponse, responses=ERRORS)
    def search_composed(body: ComposedSearch) -> SearchResponse:
        start = time.perf_counter()
        check_k(body.k)
        check_item(body.item_id)
        text = check_text(body.modify, "the modification")
        results = search.composed_from_item(body.item_id, text, body.k, rerank=body.rerank,
                                            categories=check_category(body.category))
        return response("composed", results, start)

    @app.post("/api/search/image-to-text", response_model=SearchResponse, responses=ERRORS)
    def search_image_to_text(file: Annotated[UploadFile, File()], k: Annotated[int, Form()] = 10,
                             category: Annotated[str | None, Form()] = None) -> SearchResponse:
        start = time.perf_counter()
        check_k(k)
        categories = check_category(category)
        return response("image-to-text", search.image_to_text([read_upload(file)], k, categories)[0], start)

    @app.post("/api/classify", response_model=ClassifyResponse, responses=ERRORS)
    def classify(file: Annotated[UploadFile, File()], labels: Annotated[list[str], Form()]) -> ClassifyResponse:
        start = time.perf_counter()
        names = list(dict.fromkeys(part.strip() for label in labels for part in label.split(",") if part.strip()))
        if not names:
            raise HTTPException(422, "labels are empty (send e.g. labels=dress,shirt,sneakers)")
        if len(names) > limits.max_labels:
            raise HTTPException(422, f"{len(names)} labels; the limit is {limits.max_labels}")
        if any(len(n) > limits.max_text_chars for n in names):
            raise HTTPException(422, f"a label is over {limits.max_text_chars} characters")
        if not all(_encodable(n) for n in names):
            raise HTTPException(422, "a label is not valid Unicode (a lone surrogate)")
        probabilities = search.classify([read_upload(file)], names)[0]
        return ClassifyResponse(labels=[LabelProbability(label=l, probability=p) for l, p in probabilities],
                                took_ms=_ms_since(start))

    # ---- heavy model calls (one at a time)

    @app.post("/api/caption", response_model=CaptionResponse, responses=ERRORS)
    def caption(file: Annotated[UploadFile | None, File()] = None, item_id: Annotated[str | None, Form()] = None,
                style: Annotated[str, Form()] = "professional") -> CaptionResponse:
        start = time.perf_counter()
        if style not in STYLES:
            raise HTTPException(422, f"unknown caption style {style!r} (known: {', '.join(STYLES)})")
        if (file is None) == (not item_id):
            raise HTTPException(422, "send either a file or an item_id")
        if item_id:
            check_item(item_id)
            picture = search.item_image(item_id)
        else:
            picture = read_upload(file)
        with turns.turn(limits.model_wait_seconds):
            text = search.model.caption([picture], style, max_seconds=limits.caption_seconds, **caption_kwargs)[0]
        return CaptionResponse(caption=text, style=style, item_id=item_id or None, took_ms=_ms_since(start))

    @app.post("/api/generate", response_model=GenerateResponse, responses=ERRORS)
    def generate(body: GenerateRequest) -> GenerateResponse:
        start = time.perf_counter()
        deadline = start + limits.generation_seconds
        steps = min(DEFAULT_STEPS, limits.max_steps) if body.steps is None else body.steps
        if not 1 <= steps <= limits.max_steps:
            raise HTTPException(422, f"steps must be between 1 and {limits.max_steps}, got {steps}")
        text = check_text(body.text, "the prompt") if body.text and body.text.strip() else None
        if body.item_id:
            check_item(body.item_id)
        elif text is None:
            raise HTTPException(422, "generation needs a text, an item_id or both")
        images = [search.item_image(body.item_id)] if body.item_id else None

        def on_step(step: int, total: int) -> None:
            if time.perf_counter() > deadline:
                raise _TimeUp(step, total)

        with turns.turn(deadline - time.perf_counter()):
            try:
                picture = search.model.generate(texts=[text] if text else None, images=images, steps=steps,
                                                seed=body.seed, progress=on_step)[0]
            except _TimeUp as stop:
                raise HTTPException(504, f"generation stopped after {stop.step} of {stop.total} steps: over the "
                                         f"time limit of {limits.generation_seconds:g} s (ask for fewer steps)") from None
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return GenerateResponse(image=url, width=picture.width, height=picture.height, steps=steps,
                                seed=body.seed, took_ms=_ms_since(start))

    # ---- item pictures

    @app.get("/items/{item_id:path}/image", response_class=Response,
             responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {"model": ErrorBody}})
    def item_image(item_id: str) -> Response:
        check_item(item_id)
        item = search.index.item(item_id)
        path = Path(item.image_path)
        if item.image_key is None and path.suffix.lower() in SERVED_TYPES and path.is_file():
            return FileResponse(path, media_type=SERVED_TYPES[path.suffix.lower()], headers=IMAGE_CACHE)
        try:
            picture = search.item_image(item_id)
        except (OSError, UnifashionError):
            raise HTTPException(500, f"the picture of item {item_id!r} cannot be read on the server") from None
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, "PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers=IMAGE_CACHE)

    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            _document_limits(plain_openapi(), limits, known_categories)
        return app.openapi_schema

    app.openapi = openapi
    return app


def _document_limits(schema: dict, limits: ServiceLimits, categories: Sequence[str]) -> None:
    """Write the service's limits into its OpenAPI schema, in place: k and steps ranges, text lengths,
    the known categories and caption styles. Only documentation: the code checks them, each with a
    one-line message of its own."""
    for body in schema.get("components", {}).get("schemas", {}).values():
        for name, prop in body.get("properties", {}).items():
            branch = next((b for b in prop.get("anyOf", [prop]) if b.get("type") in ("integer", "string")), None)
            if branch is None:
                continue
            if name == "k" and branch["type"] == "integer":
                branch.update(minimum=1, maximum=limits.max_k)
            elif name == "steps" and branch["type"] == "integer":
                branch.update(minimum=1, maximum=limits.max_steps)
            elif name in ("text", "modify") and branch["type"] == "string":
                branch["maxLength"] = limits.max_text_chars
            elif name == "category" and branch["type"] == "string" and categories:
                branch["enum"] = list(categories)
            elif name == "style" and branch["type"] == "string":
                branch["enum"] = list(STYLES)


def _image_url(item_id: str) -> str:
    return f"/items/{quote(item_id, safe='/')}/image"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def _one_line(exc: RequestValidationError) -> str:
    """The first validation error as `field: message` (FastAPI's default is a list of objects)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form"))
    message = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def serve(model_dir: str | Path, index_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          limits: ServiceLimits = ServiceLimits(), access: ServiceAccess = ServiceAccess(), *,
          log_level: str = "info") -> None:
    """Load the model and its index (warmed), then answer HTTP on host:port until interrupted.

    Prints a one-line warning to stderr when `host` is not a loopback address and no API key is set.
    Raises ConfigError / DataError (one-line messages) when the model or index cannot be loaded or
    do not belong together.
    """
    warning = exposure_warning(host, access)
    if warning:
        print(warning, file=sys.stderr)
    import uvicorn

    from unifashion.search.catalog_index import CatalogIndex
    from unifashion.models.unified import UniFashion

    model = UniFashion.from_pretrained(model_dir)
    index = CatalogIndex.open(Path(index_dir))
    index.warm()
    app = create_app(CatalogSearch(model, index), limits, access)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
