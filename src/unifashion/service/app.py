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
    POST /api/classify              multipart: file, labels (comma-separated, or the field repeated)
    POST /api/caption, /api/generate, /api/tryon    the heavy model calls (drawing.py)
    GET  /items/{item_id}/image     the item's picture (pictures.py)

Every error is JSON {"detail": "one line"}, naming no file of the server: 4xx for what the caller can
fix (400 unreadable upload or a model refusal, 401 no or wrong API key, 404 unknown item, 408 request
not sent in time, 413 too large, 415 not an image, 422 a bad value), 5xx for the server's side: 500 an
item's picture unreadable here, or any other failure (without a traceback, service/error_handlers.py),
503 the model busy or no try-on model, 504 a generation over its time limit.

Here: the searches and the wiring, reaching the model and the index only through the CatalogSearch
facade (live.py reopens the index when it changes on disk). Beside it: the bodies (schemas.py), who may
call (access.py), the bounds (limits.py), upload decoding (uploads.py), who gets the model when
(batching.py), the stalled-connection timeout (connections.py).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from unifashion.errors import ConfigError
from unifashion.search.engine import CatalogSearch, SearchHit, TextQuery
from unifashion.service.access import ServiceAccess, add_access_control, exposure_warning
from unifashion.service.batching import ModelTurns, TextSearchBatcher
from unifashion.service.dependencies import Service, ServiceState
from unifashion.service.drawing import drawing, ms_since
from unifashion.service.error_handlers import add_error_handlers
from unifashion.service.limits import (FORM_OVERHEAD, BodyLimit, ServiceLimits, check_category, check_k,
                                       check_labels, check_text, document_limits)
from unifashion.service.live import LiveIndex, View
from unifashion.service.pictures import check_item, pictures, reference_picture
from unifashion.service.schemas import (ERRORS, Categories, ClassifyResponse, ComposedSearch, Health, Hit,
                                        LabelProbability, SearchResponse, Status, TextSearch)
from unifashion.service.uploads import read_upload

STATIC = Path(__file__).parent / "static"
TRYON_PARTS = 4  # uploads of a try-on request at most: person, mask, pose, garment

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
                  generator_size=search.image_size, tryon=service.tryon is not None, limits=asdict(service.limits))


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


async def _sent_modify(request: Request) -> str | None:
    """The `modify` field as sent: FastAPI reads an empty form field as absent, which would turn a blank
    modification into a plain image search; here it is "" (refused by the route, as composed search does)."""
    value = (await request.form()).get("modify")  # the form FastAPI already read (cached)
    return value if isinstance(value, str) else None


@api.post("/api/search/image", response_model=SearchResponse, responses=ERRORS)
def search_image(service: Service, file: Annotated[UploadFile, File()],
                 sent_modify: Annotated[str | None, Depends(_sent_modify)],
                 modify: Annotated[str | None, Form(description="words that change the photo: a composed search")] = None,
                 k: Annotated[int, Form()] = 10, category: Annotated[str | None, Form()] = None,
                 rerank: Annotated[bool, Form()] = True) -> SearchResponse:
    start = time.perf_counter()
    check_k(k, service.limits)
    categories = check_category(category, service.categories)
    if sent_modify is not None:  # present: a composed search, and an empty or blank one is a 422
        text = check_text(sent_modify, "the modification", service.limits)
        picture = read_upload(file, service.limits)
        return _found("composed", service.search.composed([picture], [text], k, rerank=rerank,
                                                          categories=categories)[0], start)
    return _found("image", service.search.image([read_upload(file, service.limits)], k, categories)[0], start)


@api.post("/api/search/composed", response_model=SearchResponse, responses=ERRORS)
def search_composed(service: Service, body: ComposedSearch) -> SearchResponse:
    start = time.perf_counter()
    check_k(body.k, service.limits)
    check_item(service, body.item_id)
    text = check_text(body.modify, "the modification", service.limits)
    categories = check_category(body.category, service.categories)
    reference = reference_picture(service, body.item_id)
    results = service.search.composed([reference], [text], body.k, rerank=body.rerank, categories=categories)[0]
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
                            took_ms=ms_since(start))


def _found(kind: str, results: Sequence[SearchHit], start: float) -> SearchResponse:
    hits = [Hit(**asdict(h), image_url=f"/items/{quote(h.item_id, safe='/')}/image") for h in results]
    return SearchResponse(kind=kind, results=hits, took_ms=ms_since(start))


# ---- the app

def create_app(search: CatalogSearch, limits: ServiceLimits = ServiceLimits(),
               access: ServiceAccess = ServiceAccess(), *, tryon: Any = None) -> FastAPI:
    """The service for `search`, whose index should be warmed (`CatalogIndex.warm()`) beforehand, and
    optionally `tryon`, an inpainting try-on model (a UniFashion; ConfigError for any other)."""
    if tryon is not None and not getattr(getattr(getattr(tryon, "generator", None), "config", None), "inpainting", False):
        raise ConfigError("the try-on model is not an inpainting model (its generator has no try-on inputs); "
                          "give one trained with `unifashion train --phase tryon` (the quickstart's tryon_model)")
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
    app.include_router(drawing)
    app.include_router(pictures)
    # middleware, innermost first: the body limit, then the key check and CORS
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes + FORM_OVERHEAD,
                       per_path={"/api/tryon": TRYON_PARTS * limits.max_upload_bytes + FORM_OVERHEAD})
    add_access_control(app, access)
    add_error_handlers(app)
    caption_tokens = limits.caption_tokens if limits.caption_tokens < search.max_caption_tokens else None

    def swap(view: View) -> None:  # the index reopened (live.py): the next requests get the new view
        text_batcher.search = view.search
        app.state.service = replace(app.state.service, search=view.search, categories=view.categories)
        app.openapi_schema = None  # its category list

    live = LiveIndex(search, limits.reload_wait_seconds, swap)
    app.state.service = ServiceState(search, limits, access, text_batcher, ModelTurns(limits.max_waiting),
                                     live.view.categories, caption_tokens, live, tryon)
    plain_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document_limits(plain_openapi(), limits, app.state.service.categories)
        return app.openapi_schema

    app.openapi = openapi
    return app


def serve(model_dir: str | Path, index_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          limits: ServiceLimits = ServiceLimits(), access: ServiceAccess = ServiceAccess(), *,
          tryon_dir: str | Path | None = None, log_level: str = "info") -> None:
    """Load the model and its index (warmed), and the try-on model when given, then answer HTTP on
    host:port until interrupted (a connection whose request is not in after `limits.request_seconds`
    is closed; connections.py).

    Prints a one-line warning to stderr when `host` is not a loopback address and no API key is set.
    Raises ConfigError / DataError (one-line messages) when a model or the index cannot be loaded, or
    do not belong together, or the try-on model is not an inpainting one.
    """
    warning = exposure_warning(host, access)
    if warning:
        print(warning, file=sys.stderr)

    import uvicorn

    from unifashion.models.unified import UniFashion
    from unifashion.search.index_folder import open_index
    from unifashion.service.connections import server_config

    tryon = UniFashion.from_pretrained(tryon_dir) if tryon_dir is not None else None
    if tryon is not None and not tryon.generator.config.inpainting:
        raise ConfigError(f"--tryon-model {tryon_dir}: not an inpainting try-on model (its generator has no "
                          f"try-on inputs); give one trained with `unifashion train --phase tryon`")
    model = UniFashion.from_pretrained(model_dir)
    index = open_index(Path(index_dir))
    index.warm()
    app = create_app(CatalogSearch(model, index), limits, access, tryon=tryon)
    uvicorn.Server(server_config(app, host, port, limits.request_seconds, log_level=log_level)).run()
