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
the rest (service/error_handlers.py).

Here: the routes and their wiring, reaching the model and the index only through the CatalogSearch
facade. Beside it: the bodies (schemas.py), who may call (access.py), the bounds (limits.py), upload
decoding (uploads.py), who gets the model when (batching.py).
"""
from __future__ import annotations

import base64
import io
import sys
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from swagger_ui_bundle import swagger_ui_path

from unifashion.errors import DataError, UnifashionError
from unifashion.models.captioner import DEFAULT_CAPTION_STYLE, check_caption_style
from unifashion.search.engine import CatalogSearch, SearchHit, TextQuery
from unifashion.service.access import ServiceAccess, add_access_control, exposure_warning
from unifashion.service.batching import ModelTurns, TextSearchBatcher
from unifashion.service.dependencies import Service, ServiceState
from unifashion.service.error_handlers import add_error_handlers
from unifashion.service.limits import (FORM_OVERHEAD, BodyLimit, ServiceLimits, TimeUp, check_category, check_k,
                                       check_labels, check_steps, check_text, document_limits, stop_after)
from unifashion.service.schemas import (ERRORS, CaptionResponse, Categories, ClassifyResponse, ComposedSearch,
                                        ErrorBody, GenerateRequest, GenerateResponse, Health, Hit, LabelProbability,
                                        SearchResponse, Status, TextSearch)
from unifashion.service.uploads import read_upload

STATIC = Path(__file__).parent / "static"
SERVED_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
IMAGE_CACHE = {"Cache-Control": "public, max-age=3600"}

pages = APIRouter()  # the web page and the docs page
api = APIRouter()  # the JSON API and the item pictures


# ---- the page and the facts

@pages.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    # Swagger UI's files from swagger-ui-bundle: FastAPI's default CDN leaves the page blank offline
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - API docs",
                               swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png")


@pages.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@api.get("/health", response_model=Health | Status)
def health(request: Request, service: Service) -> Health | Status:
    if not service.access.allows(request.scope["headers"]):
        return Status(status="ok")  # with an API key set, the rest is for those who send it
    search = service.search
    return Health(status="ok", items=len(search), model=search.fingerprint[:12], captions=search.has_captions,
                  generator_size=search.image_size, limits=asdict(service.limits))


@api.get("/api/categories", response_model=Categories)
def categories(service: Service) -> Categories:
    return Categories(categories=service.categories)


# ---- searches (parallel)

@api.post("/api/search/text", response_model=SearchResponse, responses=ERRORS)
def search_text(service: Service, body: TextSearch) -> SearchResponse:
    start = time.perf_counter()
    check_k(body.k, service.limits)
    text = check_text(body.text, "the search text", service.limits)
    categories = check_category(body.category, service.categories)
    query = TextQuery(text, body.k, tuple(categories) if categories is not None else None)
    return _found("text", service.text_batcher(query), start)


@api.post("/api/search/image", response_model=SearchResponse, responses=ERRORS)
def search_image(service: Service, file: Annotated[UploadFile, File()], modify: Annotated[str | None, Form()] = None,
                 k: Annotated[int, Form()] = 10, category: Annotated[str | None, Form()] = None,
                 rerank: Annotated[bool, Form()] = True) -> SearchResponse:
    start = time.perf_counter()
    check_k(k, service.limits)
    categories = check_category(category, service.categories)
    if modify is not None and modify.strip():
        text = check_text(modify, "the modification", service.limits)
        picture = read_upload(file, service.limits)
        return _found("composed", service.search.composed([picture], [text], k, rerank=rerank,
                                                          categories=categories)[0], start)
    return _found("image", service.search.image([read_upload(file, service.limits)], k, categories)[0], start)


@api.post("/api/search/composed", response_model=SearchResponse, responses=ERRORS)
def search_composed(service: Service, body: ComposedSearch) -> SearchResponse:
    start = time.perf_counter()
    check_k(body.k, service.limits)
    _check_item(service, body.item_id)
    text = check_text(body.modify, "the modification", service.limits)
    results = service.search.composed_from_item(body.item_id, text, body.k, rerank=body.rerank,
                                                categories=check_category(body.category, service.categories))
    return _found("composed", results, start)


@api.post("/api/search/image-to-text", response_model=SearchResponse, responses=ERRORS)
def search_image_to_text(service: Service, file: Annotated[UploadFile, File()], k: Annotated[int, Form()] = 10,
                         category: Annotated[str | None, Form()] = None) -> SearchResponse:
    start = time.perf_counter()
    check_k(k, service.limits)
    categories = check_category(category, service.categories)
    picture = read_upload(file, service.limits)
    return _found("image-to-text", service.search.image_to_text([picture], k, categories)[0], start)


@api.post("/api/classify", response_model=ClassifyResponse, responses=ERRORS)
def classify(service: Service, file: Annotated[UploadFile, File()],
             labels: Annotated[list[str], Form()]) -> ClassifyResponse:
    start = time.perf_counter()
    names = check_labels(labels, service.limits)
    probabilities = service.search.classify([read_upload(file, service.limits)], names)[0]
    return ClassifyResponse(labels=[LabelProbability(label=l, probability=p) for l, p in probabilities],
                            took_ms=_ms_since(start))


# ---- heavy model calls (one at a time)

@api.post("/api/caption", response_model=CaptionResponse, responses=ERRORS)
def caption(service: Service, file: Annotated[UploadFile | None, File()] = None,
            item_id: Annotated[str | None, Form()] = None,
            style: Annotated[str, Form()] = DEFAULT_CAPTION_STYLE) -> CaptionResponse:
    start = time.perf_counter()
    try:
        check_caption_style(style)
    except DataError as unknown:
        raise HTTPException(422, str(unknown)) from None
    if (file is None) == (not item_id):
        raise HTTPException(422, "send either a file or an item_id")
    if item_id:
        _check_item(service, item_id)
        picture = service.search.item_image(item_id)
    else:
        picture = read_upload(file, service.limits)
    with service.model_turns.turn(service.limits.model_wait_seconds):
        text = service.search.caption([picture], style, max_new_tokens=service.caption_tokens,
                                      max_seconds=service.limits.caption_seconds)[0]
    return CaptionResponse(caption=text, style=style, item_id=item_id or None, took_ms=_ms_since(start))


@api.post("/api/generate", response_model=GenerateResponse, responses=ERRORS)
def generate(service: Service, body: GenerateRequest) -> GenerateResponse:
    start = time.perf_counter()
    limits = service.limits
    deadline = start + limits.generation_seconds
    steps = check_steps(body.steps, limits)
    text = check_text(body.text, "the prompt", limits) if body.text and body.text.strip() else None
    if body.item_id:
        _check_item(service, body.item_id)
    elif text is None:
        raise HTTPException(422, "generation needs a text, an item_id or both")
    images = [service.search.item_image(body.item_id)] if body.item_id else None
    with service.model_turns.turn(deadline - time.perf_counter()):
        try:
            picture = service.search.generate(texts=[text] if text else None, images=images, steps=steps,
                                              seed=body.seed, progress=stop_after(deadline))[0]
        except TimeUp as stop:
            raise HTTPException(504, f"generation stopped after {stop.step} of {stop.total} steps: over the "
                                     f"time limit of {limits.generation_seconds:g} s (ask for fewer steps)") from None
    url = "data:image/png;base64," + base64.b64encode(_png(picture)).decode("ascii")
    return GenerateResponse(image=url, width=picture.width, height=picture.height, steps=steps,
                            seed=body.seed, took_ms=_ms_since(start))


# ---- item pictures

@api.get("/items/{item_id:path}/image", response_class=Response,
         responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {"model": ErrorBody}})
def item_image(service: Service, item_id: str) -> Response:
    _check_item(service, item_id)
    item = service.search.item(item_id)
    path = Path(item.image_path)
    if item.image_key is None and path.suffix.lower() in SERVED_TYPES and path.is_file():
        return FileResponse(path, media_type=SERVED_TYPES[path.suffix.lower()], headers=IMAGE_CACHE)
    try:
        picture = service.search.item_image(item_id)
    except (OSError, UnifashionError):
        raise HTTPException(500, f"the picture of item {item_id!r} cannot be read on the server") from None
    return Response(_png(picture.convert("RGB")), media_type="image/png", headers=IMAGE_CACHE)


def _check_item(service: ServiceState, item_id: str) -> None:
    if item_id not in service.search:
        raise HTTPException(404, f"no item {item_id!r} in the index")


def _found(kind: str, results: Sequence[SearchHit], start: float) -> SearchResponse:
    hits = [Hit(**asdict(h), image_url=f"/items/{quote(h.item_id, safe='/')}/image") for h in results]
    return SearchResponse(kind=kind, results=hits, took_ms=_ms_since(start))


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


# ---- the app

def create_app(search: CatalogSearch, limits: ServiceLimits = ServiceLimits(),
               access: ServiceAccess = ServiceAccess()) -> FastAPI:
    """The service for `search`, whose index should be warmed (`CatalogIndex.warm()`) beforehand."""
    text_batcher = TextSearchBatcher(search, limits.text_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        text_batcher.start()  # a no-op the first time; after a shutdown (the app served again), a new worker
        yield
        text_batcher.close()

    app = FastAPI(title="UniFashion catalog search", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Text, image and composed ('this one, but ...') search over a catalog, "
                              "captions, zero-shot classification and generation, by one UniFashion model.")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api)
    # middleware, innermost first: the body limit, then the key check and CORS
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes + FORM_OVERHEAD)
    add_access_control(app, access)
    add_error_handlers(app)
    caption_tokens = limits.caption_tokens if limits.caption_tokens < search.max_caption_tokens else None
    state = app.state.service = ServiceState(search, limits, access, text_batcher, ModelTurns(limits.max_waiting),
                                             search.categories(), caption_tokens)
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document_limits(plain_openapi(), limits, state.categories)
        return app.openapi_schema

    app.openapi = openapi
    return app


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
