"""Items and their pictures: the item id checks, an item's picture as the reference of a search or a
drawing, and `GET /items/{item_id}/image`.

An item's picture lives on the server (its index names the file). When the file is gone or is not a
picture, that is the server's problem, not the caller's: the answer names the item (at most a short
prefix of its id) and never the file, whose path goes to the server's log.
"""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from PIL import Image

from unifashion.data.samples import IMAGE_FORMATS
from unifashion.errors import UnifashionError
from unifashion.service.dependencies import Service, ServiceState
from unifashion.service.limits import check_item_id, shown
from unifashion.service.schemas import ErrorBody

logger = logging.getLogger(__name__)

IMAGE_CACHE = {"Cache-Control": "public, max-age=3600"}
# formats of IMAGE_FORMATS served as the file's own bytes (every browser shows them); the others
# (TIFF) are decoded and served as PNG
SERVED_AS_IS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_SERVED_BYTES = 64 * 2**20  # a picture file larger than this is decoded and served as PNG, not read whole

pictures = APIRouter()


def check_item(service: ServiceState, item_id: str) -> str:
    """`item_id` when the index has it: 422 for an id over the length limit, 404 otherwise."""
    check_item_id(item_id, service.limits)
    if item_id not in service.search:
        raise HTTPException(404, f"no item {shown(item_id)} in the index")
    return item_id


def reference_picture(service: ServiceState, item_id: str) -> Image.Image:
    """The picture of an item (checked to be in the index) for a search or a drawing that starts from
    it; 500 naming the item, not its file, when the server cannot read it (the file is logged)."""
    try:
        return service.search.item_image(item_id)
    except (UnifashionError, OSError) as failure:
        logger.error("item %r: its picture cannot be read (%s)", item_id, failure)
        raise HTTPException(500, f"the picture of item {shown(item_id)} cannot be read on this server "
                                 f"(the server's log names the file)") from None


def _no_image(item_id: str, why: object) -> HTTPException:
    logger.error("item %r: no picture to serve (%s)", item_id, why)
    return HTTPException(404, f"item {shown(item_id)} has no image on this server")


def _unreadable(item_id: str, why: object) -> HTTPException:
    logger.error("item %r: its picture file is not a readable image (%s)", item_id, why)
    return HTTPException(500, f"the picture of item {shown(item_id)} on this server is not a readable image "
                              f"(the server's log names the file)")


def sniffed_format(data: bytes) -> str | None:
    """The format of an image file's bytes among IMAGE_FORMATS, read from its header; None when it is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as picture:
                return picture.format
    except Exception:  # noqa: BLE001 - PIL raises many types on bytes that are not an image
        return None


@pictures.get("/items/{item_id:path}/image", response_class=Response,
              responses={200: {"content": {f"image/{f.lower()}": {} for f in SERVED_AS_IS}},
                         404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 500: {"model": ErrorBody}})
def item_image(service: Service, item_id: str) -> Response:
    """The item's picture: the file's own bytes with its real media type (PNG, JPEG, WebP, GIF, BMP),
    a TIFF or an HDF5 row as PNG."""
    check_item(service, item_id)
    item = service.search.item(item_id)
    path = Path(item.image_path)
    if not path.is_file():
        raise _no_image(item_id, f"{path} is not a file")
    if item.image_key is None and path.stat().st_size <= MAX_SERVED_BYTES:
        try:
            data = path.read_bytes()
        except OSError as failure:
            raise _no_image(item_id, failure) from None
        found = sniffed_format(data)
        if found is None:
            raise _unreadable(item_id, f"{path}: not one of {', '.join(IMAGE_FORMATS)}")
        if found in SERVED_AS_IS:
            return Response(data, media_type=Image.MIME[found], headers=IMAGE_CACHE)
    try:
        picture = service.search.item_image(item_id)
    except (UnifashionError, OSError) as failure:
        raise _unreadable(item_id, failure) from None
    return Response(png(picture.convert("RGB")), media_type="image/png", headers=IMAGE_CACHE)


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()
