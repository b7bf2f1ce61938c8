"""The heavy model calls, one at a time (service/batching.py ModelTurns): captions, generation and
try-on. A generation or try-on is stopped at the first denoising step past its time limit (504).

    POST /api/caption    multipart: file or item_id [, style]
    POST /api/generate   {text, item_id, steps, seed} -> a PNG as a data URL
    POST /api/tryon      multipart: person, mask [, pose], garment or item_id [, caption, design, steps, seed]
                         -> a PNG as a data URL; 503 when the server has no try-on model (--tryon-model)
"""
from __future__ import annotations

import base64
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from PIL import Image

from unifashion.errors import DataError
from unifashion.models.captioner import DEFAULT_CAPTION_STYLE, check_caption_style
from unifashion.service.dependencies import Service, ServiceState
from unifashion.service.limits import TimeUp, check_steps, check_text, stop_after
from unifashion.service.pictures import check_item, png, reference_picture
from unifashion.service.schemas import (ERRORS, CaptionResponse, GenerateRequest, GenerateResponse,
                                        TryOnResponse)
from unifashion.service.uploads import read_upload

drawing = APIRouter()
NO_TRYON = "this server has no try-on model (start serve with --tryon-model)"


@drawing.post("/api/caption", response_model=CaptionResponse, responses=ERRORS)
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
        picture = reference_picture(service, check_item(service, item_id))
    else:
        picture = read_upload(file, service.limits)
    with service.model_turns.turn(service.limits.model_wait_seconds):
        text = service.search.caption([picture], style, max_new_tokens=service.caption_tokens,
                                      max_seconds=service.limits.caption_seconds)[0]
    return CaptionResponse(caption=text, style=style, item_id=item_id or None, took_ms=ms_since(start))


@drawing.post("/api/generate", response_model=GenerateResponse, responses=ERRORS)
def generate(service: Service, body: GenerateRequest) -> GenerateResponse:
    start = time.perf_counter()
    steps = check_steps(body.steps, service.limits)
    text = check_text(body.text, "the prompt", service.limits) if body.text and body.text.strip() else None
    if body.item_id:
        check_item(service, body.item_id)
    elif text is None:
        raise HTTPException(422, "generation needs a text, an item_id or both")
    images = [reference_picture(service, body.item_id)] if body.item_id else None
    picture = _draw(service, start, lambda progress: service.search.generate(
        texts=[text] if text else None, images=images, steps=steps, seed=body.seed, progress=progress)[0])
    return GenerateResponse(image=data_url(picture), width=picture.width, height=picture.height, steps=steps,
                            seed=body.seed, took_ms=ms_since(start))


async def _has_tryon(service: Service) -> None:
    if service.tryon is None:  # before the form is read: the one line that matters
        raise HTTPException(503, NO_TRYON)


@drawing.post("/api/tryon", response_model=TryOnResponse, responses=ERRORS, dependencies=[Depends(_has_tryon)])
def tryon(service: Service, person: Annotated[UploadFile, File(description="the person photo")],
          mask: Annotated[UploadFile, File(description="the region to redraw: white on black, the person's size")],
          pose: Annotated[UploadFile | None, File(description="a rendered pose map of the person")] = None,
          garment: Annotated[UploadFile | None, File(description="the garment to put on")] = None,
          item_id: Annotated[str | None, Form(description="a catalog item as the garment")] = None,
          caption: Annotated[str | None, Form(description="the garment's description")] = None,
          design: Annotated[bool, Form(description="draw the garment from the caption alone")] = False,
          steps: Annotated[int | None, Form()] = None,
          seed: Annotated[int, Form(ge=0, lt=2**32)] = 0) -> TryOnResponse:
    """Put a garment (an upload or a catalog item) on the person, in the mask's region; with `design`,
    a garment drawn from the caption alone."""
    from unifashion.data.tryon_inputs import tryon_sample

    start = time.perf_counter()
    limits = service.limits
    steps = check_steps(steps, limits)
    text = check_text(caption, "the caption", limits) if caption and caption.strip() else None
    if design:
        if text is None:
            raise HTTPException(422, "a design draws the garment from the caption alone: send a caption")
        if garment is not None or item_id:
            raise HTTPException(422, "a design takes no garment: send design=false to put this one on")
    elif (garment is None) == (not item_id):
        raise HTTPException(422, "send either a garment file or an item_id (or design=true with a caption)")
    if item_id:
        clothes = reference_picture(service, check_item(service, item_id))
    else:
        clothes = read_upload(garment, limits) if garment is not None else None
    pictures = [read_upload(part, limits) if part is not None else None for part in (person, mask, pose)]
    try:
        sample = tryon_sample(pictures[0], clothes, mask=pictures[1], pose=pictures[2], caption=text)
    except DataError as refused:
        raise HTTPException(422, str(refused).splitlines()[0]) from None
    picture = _draw(service, start, lambda progress: service.tryon.generate_tryon(
        [sample], garment_image=not design, steps=steps, seed=seed, progress=progress)[0])
    return TryOnResponse(image=data_url(picture), width=picture.width, height=picture.height, steps=steps,
                         seed=seed, design=design, item_id=item_id or None, took_ms=ms_since(start))


def _draw(service: ServiceState, start: float, draw) -> Image.Image:
    """`draw(progress)` in the models' turn, stopped at the first step past the generation time limit (504)."""
    limits = service.limits
    deadline = start + limits.generation_seconds
    with service.model_turns.turn(deadline - time.perf_counter()):
        try:
            return draw(stop_after(deadline))
        except TimeUp as stop:
            raise HTTPException(504, f"generation stopped after {stop.step} of {stop.total} steps: over the "
                                     f"time limit of {limits.generation_seconds:g} s (ask for fewer steps)") from None


def data_url(picture: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(picture)).decode("ascii")


def ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
