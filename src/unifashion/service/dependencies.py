"""What the routes share, handed to each by FastAPI's dependency injection (`service: Service`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from unifashion.search.engine import CatalogSearch
from unifashion.service.access import ServiceAccess
from unifashion.service.batching import ModelTurns, TextSearchBatcher
from unifashion.service.limits import ServiceLimits
from unifashion.service.live import LiveIndex


@dataclass(frozen=True)
class ServiceState:
    """What the routes share, one per app (`app.state.service`; swapped whole when the index reloads)."""
    search: CatalogSearch  # the index as of the request's start (service/live.py)
    limits: ServiceLimits
    access: ServiceAccess
    text_batcher: TextSearchBatcher
    model_turns: ModelTurns  # caption, generate and try-on take turns on the models
    categories: list[str]  # the index's
    caption_tokens: int | None  # the service's cap on a caption's tokens when lower than the model's own, else None
    live: LiveIndex  # notices index changes on disk and reopens it
    tryon: Any = None  # the inpainting try-on model (a UniFashion), or None: POST /api/tryon answers 503


async def service_state(request: Request) -> ServiceState:
    await request.app.state.service.live.current()  # a changed index is reopened first (swaps app.state.service)
    return request.app.state.service


Service = Annotated[ServiceState, Depends(service_state)]
