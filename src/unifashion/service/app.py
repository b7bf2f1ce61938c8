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
a model refusal, 404 unknown item, 413 too large, 415 not an image, 422 a bad value), 503/504 when
the model is busy or a generation runs out of time, 500 without a traceback for the rest.

Concurrency: searches run in parallel in FastAPI's thread pool; they only read the index, warmed
before the app is made. Text searches that arrive together are encoded and searched as one batch
(service/batching.py). The heavy model calls (caption, generate) take turns behind one lock.
"""
from __future__ import annotations

import base64
import io
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from unifashion.catalog_search import CatalogSearch, SearchHit, TextQuery
from unifashion.errors import UnifashionError
from unifashion.models.captioner import STYLES
from unifashion.service.batching import TextSearchBatcher

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # what PIL may decode from an upload
SERVED_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small form fields beside an upload
IMAGE_CACHE = {"Cache-Control": "public, max-age=3600"}


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
    text_batch: int = 16  # concurrent text searches encoded and searched together, at most


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
    steps: int = 20
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


ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 500, 503, 504)}


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


class _TimeUp(Exception):
    def __init__(self, step: int, total: int):
        self.step, self.total = step, total


def create_app(search: CatalogSearch, limits: ServiceLimits = ServiceLimits()) -> FastAPI:
    """The service for `search`, whose index should be warmed (`search.index.warm()`) beforehand."""
    text_batcher = TextSearchBatcher(search, limits.text_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
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

    app.add_middleware(_BodyLimit, max_bytes=limits.max_upload_bytes + FORM_OVERHEAD)
    app.state.search = search
    app.state.limits = limits
    app.state.text_batcher = text_batcher
    model_lock = threading.Lock()  # caption and generate take turns on the model
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
            picture = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
            width, height = picture.size  # from the header: nothing is decoded yet
            if width * height > limits.max_pixels:
                raise HTTPException(413, f"{name}: {width}x{height} pixels is over the limit of "
                                         f"{limits.max_pixels} pixels")
            picture.load()
            return picture.convert("RGB")
        except Image.DecompressionBombError:
            raise HTTPException(413, f"{name}: too many pixels to decode") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            raise HTTPException(400, f"{name}: not a readable image (send PNG, JPEG, WebP, GIF, BMP or TIFF)") from None

    @contextmanager
    def model_turn(wait_s: float) -> Iterator[None]:
        if not model_lock.acquire(timeout=max(wait_s, 0.0)):
            raise HTTPException(503, "the model is busy with another caption or generation; try again shortly")
        try:
            yield
        finally:
            model_lock.release()

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

    @app.get("/health", response_model=Health)
    def health() -> Health:
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
        with model_turn(limits.model_wait_seconds):
            text = search.model.caption([picture], style)[0]
        return CaptionResponse(caption=text, style=style, item_id=item_id or None, took_ms=_ms_since(start))

    @app.post("/api/generate", response_model=GenerateResponse, responses=ERRORS)
    def generate(body: GenerateRequest) -> GenerateResponse:
        start = time.perf_counter()
        deadline = start + limits.generation_seconds
        if not 1 <= body.steps <= limits.max_steps:
            raise HTTPException(422, f"steps must be between 1 and {limits.max_steps}, got {body.steps}")
        text = check_text(body.text, "the prompt") if body.text and body.text.strip() else None
        if body.item_id:
            check_item(body.item_id)
        elif text is None:
            raise HTTPException(422, "generation needs a text, an item_id or both")
        images = [search.item_image(body.item_id)] if body.item_id else None

        def on_step(step: int, total: int) -> None:
            if time.perf_counter() > deadline:
                raise _TimeUp(step, total)

        with model_turn(deadline - time.perf_counter()):
            try:
                picture = search.model.generate(texts=[text] if text else None, images=images, steps=body.steps,
                                                seed=body.seed, progress=on_step)[0]
            except _TimeUp as stop:
                raise HTTPException(504, f"generation stopped after {stop.step} of {stop.total} steps: over the "
                                         f"time limit of {limits.generation_seconds:g} s (ask for fewer steps)") from None
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return GenerateResponse(image=url, width=picture.width, height=picture.height, steps=body.steps,
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

    return app


def _image_url(item_id: str) -> str:
    return f"/items/{quote(item_id, safe='/')}/image"


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
          limits: ServiceLimits = ServiceLimits(), *, log_level: str = "info") -> None:
    """Load the model and its index (warmed), then answer HTTP on host:port until interrupted.

    Raises ConfigError / DataError (one-line messages) when the model or index cannot be loaded or
    do not belong together.
    """
    import uvicorn

    from unifashion.index.catalog_index import CatalogIndex
    from unifashion.models.unified import UniFashion

    model = UniFashion.from_pretrained(model_dir)
    index = CatalogIndex.open(Path(index_dir))
    index.warm()
    app = create_app(CatalogSearch(model, index), limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
