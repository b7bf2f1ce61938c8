"""Typed samples that every loader returns and every later stage consumes.

One sample type per task family, whatever the release format it came from:
- `ImageTextPair`: one product image with its text (FashionGen, Fashion200K, our catalog JSONL).
- `Triplet`: reference image + modification texts -> target image (Fashion-IQ).
- `TryOnSample`: a person, a garment and the conditioning maps (VITON-HD, with MGD's additions).

Images are referenced, not loaded: `ImageRef.load()` reads a file or one row of an HDF5 dataset,
and a missing or broken image raises `DataError` naming the file (and row).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unifashion.errors import DataError


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives: an image file, or row `index` of dataset `key` in an HDF5 file."""

    path: Path
    key: str | None = None  # HDF5 dataset name (FashionGen: "input_image")
    index: int | None = None  # HDF5 row
    # The file is an agnostic image (garment region painted grey): load() returns the mask of
    # that paint instead (L, 255 = masked), for releases that ship no mask files.
    grey_paint_mask: bool = False

    def load(self) -> Image.Image:
        """The image as PIL (RGB for colour images, L or P kept for masks and parse maps)."""
        if self.key is not None:
            return _load_hdf5_image(self.path, self.key, self.index)
        if self.grey_paint_mask:
            return grey_paint_mask(ImageRef(self.path).load())
        try:
            with Image.open(self.path) as im:
                im.load()  # forces a full decode so that truncation is caught here
                return im.copy()
        except FileNotFoundError:
            raise DataError(f"{self.path}: image file not found") from None
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
            raise DataError(f"{self.path}: cannot read image ({e})") from None

    def __str__(self) -> str:
        return f"{self.path}[{self.key}][{self.index}]" if self.key else str(self.path)


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
            arr = np.asarray(f[key][index])  # (H, W, 3) uint8
    except FileNotFoundError:
        raise DataError(f"{path}: HDF5 file not found") from None
    except OSError as e:
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
    garment: ImageRef  # in-shop garment
    garment_mask: ImageRef  # binary mask of the in-shop garment
    agnostic: ImageRef  # person with the garment region masked out
    agnostic_mask: ImageRef  # binary mask of the region to inpaint
    parse: ImageRef  # human parsing map (palette PNG)
    pose_image: ImageRef  # rendered OpenPose skeleton
    pose_keypoints: np.ndarray = field(compare=False, hash=False, repr=False)  # (18, 3) x, y, confidence
    sketch: ImageRef | None = None  # MGD: garment sketch (edge map), when present
    caption: str | None = None  # MGD: text describing the garment, when present
