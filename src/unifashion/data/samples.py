"""Typed samples that every loader returns and every later stage consumes.

One sample type per task family, whatever the release format it came from:
- `ImageTextPair`: one product image with its text (FashionGen, Fashion200K, our catalog JSONL).
- `Triplet`: reference image + modification texts -> target image (Fashion-IQ).
- `TryOnSample`: a person, a garment and the conditioning maps (VITON-HD, with MGD's additions).

Images are referenced, not loaded: `ImageRef.load()` reads a file or one row of an HDF5 dataset,
and a missing or broken image raises `DataError` naming the file (and row).

Image files are untrusted input. `load()` decodes only the raster formats in `IMAGE_FORMATS` (never
SVG, EPS or other formats that run an interpreter or a delegate), refuses more than
`MAX_IMAGE_PIXELS` pixels from the header before decoding (decompression bombs), decodes fully so
that a truncated or corrupt file is refused here (PIL's `LOAD_TRUNCATED_IMAGES` stays False: a
truncated photo is an error, never silently padded with grey), applies the EXIF orientation and
brings unusual modes (16-bit, CMYK, ...) to 8-bit ones. `load_rgb()` / `to_rgb()` give the RGB
picture the models read, transparency composited onto white.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unifashion.errors import DataError

# Raster formats we decode (the service's uploads use the same list). Everything else is refused
# as "not an image": vector and script formats (SVG, EPS/PS, PDF) and rarely used plugins.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# Width x height above which a file is refused before decoding: 8000 x 8000, far above any product
# or try-on photo (VITON-HD is 1024 x 768), far below what a decompression bomb declares. Below
# PIL's own warning threshold (89 Mpx), so its DecompressionBombWarning never reaches the user.
MAX_IMAGE_PIXELS = 64_000_000
# Modes load() returns as they are; others are converted (see _normalise_mode).
_KEPT_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1")


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives: an image file, or row `index` of dataset `key` in an HDF5 file."""

    path: Path
    key: str | None = None  # HDF5 dataset name (FashionGen: "input_image")
    index: int | None = None  # HDF5 row
    # The file is an agnostic image (garment region painted grey): load() returns the mask of
    # that paint instead (L, 255 = masked), for releases that ship no mask files.
    grey_paint_mask: bool = False
    # A picture already decoded (an upload, a derived map): load() returns a copy; `path` only names it.
    image: Image.Image | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def of_image(cls, image: Image.Image, name: str) -> "ImageRef":
        """A reference to a decoded picture, called `name` in messages."""
        if not isinstance(image, Image.Image):
            raise DataError(f"{name}: expected a PIL image, got {type(image).__name__}")
        return cls(Path(name), image=image)

    def load(self) -> Image.Image:
        """The image as PIL: RGB for colour photos, L or P kept for masks and parse maps, RGBA/LA/PA
        where the file has transparency (the module docstring lists what is refused)."""
        if self.image is not None:
            return self.image.copy()
        if self.key is not None:
            return _load_hdf5_image(self.path, self.key, self.index)
        if self.grey_paint_mask:
            return grey_paint_mask(ImageRef(self.path).load())
        return load_image_file(self.path)

    def load_rgb(self) -> Image.Image:
        """The image as RGB (transparency on white): what a photo given by a user becomes."""
        return to_rgb(self.load(), str(self))

    def __str__(self) -> str:
        return f"{self.path}[{self.key}][{self.index}]" if self.key else str(self.path)


def load_image_file(path: Path) -> Image.Image:
    """Decode one image file (checks in the module docstring); DataError naming the file otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file, not an image")
        with warnings.catch_warnings():
            # PIL warns (and only above twice its limit raises) on huge images; we refuse them below,
            # and the warning must not print a second line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im_ctx = Image.open(path, formats=IMAGE_FORMATS)
        with im_ctx as im:
            width, height = im.size  # from the header: nothing is decoded yet
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{path}: {width}x{height} is over the limit of {MAX_IMAGE_PIXELS:,} pixels")
            if width < 1 or height < 1:
                raise DataError(f"{path}: image has no pixels ({width}x{height})")
            im.load()  # a full decode (the first frame of an animation): truncation is caught here
            out = _normalise_mode(_upright(im))
            return out if out is not im else im.copy()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image in a supported format ({', '.join(IMAGE_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: over the limit of {MAX_IMAGE_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        # PIL signals corrupt data with all of these (OSError "image file is truncated",
        # SyntaxError from some plugins' header parsers, EOFError from short streams)
        raise DataError(f"{path}: cannot read image ({e})") from None


def _upright(im: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (phone photos). A malformed EXIF block is
    metadata we cannot use: the pixels are kept as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - PIL's EXIF parser raises many types on hostile metadata
        return im


def _normalise_mode(im: Image.Image) -> Image.Image:
    """8-bit modes: 16/32-bit greyscale scaled to L, float clipped to L, CMYK/YCbCr/LAB/... to RGB."""
    if im.mode in _KEPT_MODES:
        return im
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.int64)  # (H, W)
        if im.mode != "I" or a.max(initial=0) > 255:  # 16-bit range (PNG/TIFF 16-bit greyscale)
            a = np.clip(a, 0, 65535) >> 8
        return Image.fromarray(a.astype(np.uint8), "L")
    if im.mode == "F":
        return Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


def to_rgb(image: Image.Image, what: str = "image") -> Image.Image:
    """An RGB copy of a PIL image; transparency (alpha or a palette's transparent entry) is
    composited onto white, as transformers' convert_to_rgb does."""
    if not isinstance(image, Image.Image):
        raise DataError(f"{what}: expected a PIL image, got {type(image).__name__}")
    try:
        if image.mode == "RGB":
            return image
        image = _normalise_mode(image)
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as e:
        raise DataError(f"{what} (mode {image.mode}) cannot be converted to RGB ({e})") from None


AGNOSTIC_GREY = 128  # VITON-HD's agnostic-v3.2 paints the try-on region PIL "gray"
AGNOSTIC_GREY_TOLERANCE = 12  # JPEG noise around it


def grey_paint_mask(agnostic: Image.Image) -> Image.Image:
    """The inpainting mask (L, 255 = masked) of an agnostic image's grey paint."""
    a = np.asarray(agnostic.convert("RGB")).astype(np.int16)  # (H, W, 3)
    grey = np.all(np.abs(a - AGNOSTIC_GREY) <= AGNOSTIC_GREY_TOLERANCE, axis=2)  # (H, W)
    return Image.fromarray((grey * 255).astype(np.uint8), "L")


def _load_hdf5_image(path: Path, key: str, index: int | None) -> Image.Image:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError(f"{path}: HDF5 key '{key}' missing (keys: {', '.join(sorted(f.keys()))})")
            ds = f[key]
            if not isinstance(ds, h5py.Dataset) or index is None or not 0 <= index < ds.shape[0]:
                raise DataError(f"{path}: no row {index} in HDF5 '{key}'")
            arr = np.asarray(ds[index])  # (H, W, 3) uint8
    except FileNotFoundError:
        raise DataError(f"{path}: HDF5 file not found") from None
    except (OSError, ValueError, TypeError, IndexError) as e:  # h5py: corrupt file or a dataset of another shape
        raise DataError(f"{path}: cannot read HDF5 row {index} of '{key}' ({e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise DataError(f"{path}: row {index} of '{key}' is not an HxWx3 uint8 image (got {arr.shape} {arr.dtype})")
    return Image.fromarray(arr, "RGB")


@dataclass(frozen=True)
class ImageTextPair:
    """One product image and its text."""

    item_id: str  # unique per image within a dataset
    product_id: str  # images of one product share it (retrieval positives)
    category: str  # e.g. "tops"
    subcategory: str  # e.g. "t-shirt"
    caption: str  # the dataset's text for the image (FashionGen: description; F200K: title)
    image: ImageRef
    split: str  # "train" | "val" | "test"
    title: str = ""  # short product name where the format has one
    # Extra fields the format carries (FashionGen: brand, gender, pose, ...; catalog: attributes).
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Triplet:
    """Composed retrieval: `reference` + `modifications` -> `target` (Fashion-IQ)."""

    category: str  # Fashion-IQ category: "dress", "shirt", "toptee", ...
    reference_id: str  # image name (ASIN in Fashion-IQ)
    target_id: str | None  # None where a release withholds targets
    modifications: tuple[str, ...]  # relative captions, two per pair in Fashion-IQ
    reference: ImageRef
    target: ImageRef | None
    split: str


@dataclass(frozen=True)
class TryOnSample:
    """Virtual try-on / design: a person, the in-shop garment and the conditioning maps."""

    person_id: str  # person image name, e.g. "00006_00.jpg"
    garment_id: str  # in-shop garment image name; equal to person_id in the paired setting
    split: str  # "train" | "test"
    paired: bool  # True when the person wears this very garment
    person: ImageRef  # the person image (target of generation)
    garment: ImageRef | None  # in-shop garment; None for a design from words alone (data.tryon_inputs)
    garment_mask: ImageRef | None  # binary mask of the in-shop garment (datasets; generation does not read it)
    agnostic: ImageRef  # person with the garment region masked out
    agnostic_mask: ImageRef  # binary mask of the region to inpaint
    parse: ImageRef | None  # human parsing map (palette PNG; datasets; generation does not read it)
    pose_image: ImageRef  # rendered OpenPose skeleton
    pose_keypoints: np.ndarray = field(compare=False, hash=False, repr=False)  # (18, 3) x, y, confidence
    sketch: ImageRef | None = None  # MGD: garment sketch (edge map), when present
    caption: str | None = None  # MGD: text describing the garment, when present
