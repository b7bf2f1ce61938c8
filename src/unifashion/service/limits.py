"""The service's bounds: request and upload sizes, k, text lengths, labels, generation steps and time,
and their documentation in the OpenAPI schema. Each check raises an HTTPException whose detail is one
line; a generation is stopped at the first step past its deadline (504)."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from unifashion.errors import DataError
from unifashion.models.captioner import STYLES
from unifashion.models.unified import label_list

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small form fields beside an upload
DEFAULT_STEPS = 20  # denoising steps of a generation that does not say (at most the service's max_steps)


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
    max_item_id_chars: int = 512  # an item id in a path or a body (longer ones are refused, never echoed)
    request_seconds: float = 60.0  # a connection whose request (headers and body) is not in after this long is closed
    reload_wait_seconds: float = 10.0  # after the index changes on disk, requests wait this long at most for it


class BodyLimit:
    """Refuses request bodies over `max_bytes` (`per_path[path]` for those paths) with a 413, by
    Content-Length or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope.get("path", ""), self.max_bytes)
        detail = f"request body over {max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > max_bytes:
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise HTTPException(413, detail)  # raised inside body parsing: FastAPI passes it on
            return message

        await self.app(scope, counted, send)


# ---- checks of request values

def check_k(k: int, limits: ServiceLimits) -> None:
    if not 1 <= k <= limits.max_k:
        raise HTTPException(422, f"k must be between 1 and {limits.max_k}, got {k}")


def check_item_id(item_id: str, limits: ServiceLimits) -> str:
    """`item_id` as given; 422 naming the limit when it is longer (the id itself is not echoed)."""
    if len(item_id) > limits.max_item_id_chars:
        raise HTTPException(422, f"item_id is {len(item_id)} characters; the limit is {limits.max_item_id_chars}")
    return item_id


def shown(item_id: str, prefix: int = 40) -> str:
    """An item id for a message: quoted, and cut to its first `prefix` characters with an ellipsis."""
    return repr(item_id) if len(item_id) <= prefix else repr(item_id[:prefix]) + "..."


def check_text(text: str | None, what: str, limits: ServiceLimits) -> str:
    """`text` stripped; 422 when empty, too long or not encodable."""
    text = (text or "").strip()
    if not text:
        raise HTTPException(422, f"{what} is empty")
    if len(text) > limits.max_text_chars:
        raise HTTPException(422, f"{what} is {len(text)} characters; the limit is {limits.max_text_chars}")
    if not _encodable(text):  # JSON's "\ud800": a lone surrogate, which no tokenizer can take
        raise HTTPException(422, f"{what} is not valid Unicode (a lone surrogate)")
    return text


def check_category(category: str | None, known: Sequence[str]) -> list[str] | None:
    """The filter for `category` (None: no filter); 422 for a category the index does not have."""
    if not category:
        return None
    if category not in known:
        raise HTTPException(422, f"unknown category {category!r} (known: {', '.join(known) or 'none'})")
    return [category]


def check_labels(labels: Sequence[str], limits: ServiceLimits) -> list[str]:
    """The labels of a classification, by the model's one rule (label_list: each field split at commas,
    stripped, empty ones and repeats dropped), within the service's limits."""
    try:
        names = label_list(labels)
    except DataError:
        raise HTTPException(422, "labels are empty (send e.g. labels=dress,shirt,sneakers)") from None
    if len(names) > limits.max_labels:
        raise HTTPException(422, f"{len(names)} labels; the limit is {limits.max_labels}")
    if any(len(n) > limits.max_text_chars for n in names):
        raise HTTPException(422, f"a label is over {limits.max_text_chars} characters")
    if not all(_encodable(n) for n in names):
        raise HTTPException(422, "a label is not valid Unicode (a lone surrogate)")
    return names


def check_steps(steps: int | None, limits: ServiceLimits) -> int:
    """The denoising steps of a generation: DEFAULT_STEPS (at most max_steps) when not given."""
    steps = min(DEFAULT_STEPS, limits.max_steps) if steps is None else steps
    if not 1 <= steps <= limits.max_steps:
        raise HTTPException(422, f"steps must be between 1 and {limits.max_steps}, got {steps}")
    return steps


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


# ---- the generation deadline

class TimeUp(Exception):
    """A generation passed its deadline at `step` of `total`."""

    def __init__(self, step: int, total: int):
        self.step, self.total = step, total


def stop_after(deadline: float) -> Callable[[int, int], None]:
    """A generation's progress callback raising TimeUp at the first step after `deadline` (perf_counter)."""
    def on_step(step: int, total: int) -> None:
        if time.perf_counter() > deadline:
            raise TimeUp(step, total)
    return on_step


# ---- the limits in the OpenAPI schema

def document_limits(schema: dict, limits: ServiceLimits, categories: Sequence[str]) -> None:
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
            elif name == "item_id" and branch["type"] == "string":
                branch["maxLength"] = limits.max_item_id_chars
            elif name == "category" and branch["type"] == "string" and categories:
                branch["enum"] = list(categories)
            elif name == "style" and branch["type"] == "string":
                branch["enum"] = list(STYLES)
