"""What the routes share, handed to each by FastAPI's dependency injection (`service: Service`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from unifashion.search.engine import CatalogSearch
from unifashion.service.access import ServiceAccess
from unifashion.service.batching import ModelTurns, TextSearchBatcher
from unifashion.service.limits import ServiceLimits


@dataclass(frozen=True)
class ServiceState:
    """What the routes share, one per app (`app.state.service`)."""
    search: CatalogSearch
    limits: ServiceLimits
    access: ServiceAccess
    text_batcher: TextSearchBatcher
    model_turns: ModelTurns  # caption and generate take turns on the model
    categories: list[str]  # the index's, when the app was made
    caption_tokens: int | None  # the service's cap on a caption's tokens when lower than the model's own, else None


async def service_state(request: Request) -> ServiceState:
    return request.app.state.service


Service = Annotated[ServiceState, Depends(service_state)]
