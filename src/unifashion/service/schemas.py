"""The service's request and response bodies (pydantic models: the OpenAPI schema's components).

Request bodies are strict: a number is not a string, and `true` is not the integer 1 (pydantic's lax mode
reads {"k": true} as k=1)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StrictBody(BaseModel):
    model_config = ConfigDict(strict=True)


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


class TextSearch(StrictBody):
    text: str
    k: int = 10
    category: str | None = None


class ComposedSearch(StrictBody):
    item_id: str  # the reference: an item of the index
    modify: str  # what to change about it ("in red", "shorter sleeves")
    k: int = 10
    category: str | None = None
    rerank: bool = True  # re-score the candidates with their gallery captions


class GenerateRequest(StrictBody):
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


class TryOnResponse(GenerateResponse):
    design: bool  # drawn from the caption alone (no garment picture)
    item_id: str | None  # the catalog item worn, if one was


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
    tryon: bool  # the server has a try-on model (POST /api/tryon)
    limits: dict


class Categories(BaseModel):
    categories: list[str]


class ErrorBody(BaseModel):
    detail: str


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 500, 503, 504)}
