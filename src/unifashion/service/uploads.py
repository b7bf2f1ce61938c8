"""Uploaded pictures decoded safely: the declared type, the byte size and the pixel count (read from the
header) are checked before anything is decoded; every refusal is an HTTPException naming the upload."""
from __future__ import annotations

import io
import warnings

from fastapi import HTTPException, UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError

from unifashion.data.samples import IMAGE_FORMATS, to_rgb
from unifashion.service.limits import ServiceLimits

UPLOAD_FORMATS = IMAGE_FORMATS  # what PIL may decode from an upload: what every loader decodes


def read_upload(upload: UploadFile, limits: ServiceLimits) -> Image.Image:
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
