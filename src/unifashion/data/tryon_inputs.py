"""One try-on or design input from a user's pictures: the `TryOnSample` that `UniFashion.generate_tryon` takes.

A person photo alone is not enough: try-on redraws one region of it, so it needs that region's mask
(white = redraw) and, for the body's shape, a rendered pose. They come one of two ways:
- the person lies in a VITON-HD layout (`ROOT/SPLIT/image/STEM.jpg`) and no mask is given: the masked
  person, its mask and the pose render are the layout's own files (`formats.vitonhd.sample_paths`; the
  mask derived from the grey paint where the release has no `agnostic-mask/`, as its loader does);
- a mask is given (a file or a PIL image of the person's size): the masked person is the photo with the
  mask's region painted VITON-HD's agnostic grey, and the pose is the given render, or none (a black
  map: the model then draws without a body pose, which it never saw in training, so expect worse shapes).

The garment is a file or a PIL image; a design (the garment drawn from its caption alone,
`generate_tryon(garment_image=False)`) needs no garment. Every problem is a DataError naming the input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from unifashion.data.formats.vitonhd import sample_paths
from unifashion.data.samples import AGNOSTIC_GREY, ImageRef, TryOnSample, to_rgb
from unifashion.errors import DataError

PERSON_FOLDER = "image"  # VITON-HD: ROOT/SPLIT/image/STEM.jpg holds the person photos
NO_POSE = np.zeros((18, 3), dtype=np.float32)  # COCO-18 keypoints, all with confidence 0: none known


def tryon_sample(person: str | Path | Image.Image, garment: str | Path | Image.Image | None = None, *,
                 mask: str | Path | Image.Image | None = None, pose: str | Path | Image.Image | None = None,
                 caption: str | None = None) -> TryOnSample:
    """The try-on / design sample of a person, a garment (None for a design) and, unless the person lies
    in a VITON-HD layout, the mask of the region to redraw (and optionally a pose render)."""
    if caption is not None and not isinstance(caption, str):
        raise DataError(f"caption is a {type(caption).__name__}, not a string")
    caption = caption.strip() or None if caption is not None else None
    garment_ref = _ref(garment, "garment") if garment is not None else None
    if mask is None:
        return _layout_sample(person, garment_ref, pose, caption)
    person_ref = _ref(person, "person")
    photo = to_rgb(person_ref.load(), "person")
    region = _ref(mask, "mask").load().convert("L")
    if region.size != photo.size:
        raise DataError(f"mask is {region.size[0]}x{region.size[1]} but the person is "
                        f"{photo.size[0]}x{photo.size[1]}: the mask must cover the person photo pixel for pixel")
    region = region.point(lambda v: 255 if v >= 128 else 0)  # white = redraw
    if region.getextrema()[1] == 0:
        raise DataError("mask is black everywhere: nothing to redraw (white marks the region to redraw)")
    masked = photo.copy()
    masked.paste((AGNOSTIC_GREY,) * 3, (0, 0, *photo.size), region)
    pose_ref = _ref(pose, "pose") if pose is not None else ImageRef.of_image(Image.new("RGB", photo.size), "no pose")
    return TryOnSample(
        person_id=person_ref.path.name, garment_id=garment_ref.path.name if garment_ref else "", split="user",
        paired=False, person=ImageRef.of_image(photo, str(person_ref)), garment=garment_ref, garment_mask=None,
        agnostic=ImageRef.of_image(masked, "masked person"), agnostic_mask=ImageRef.of_image(region, "mask"),
        parse=None, pose_image=pose_ref, pose_keypoints=NO_POSE, caption=caption)


def _ref(image: str | Path | Image.Image, what: str) -> ImageRef:
    """An image argument as a reference: a PIL image as it is, a path checked to be a readable image."""
    if isinstance(image, Image.Image):
        return ImageRef.of_image(image, what)
    if not isinstance(image, (str, Path)) or not str(image).strip():
        raise DataError(f"{what} must be an image file or a PIL image, got {image!r:.60}")
    ref = ImageRef(Path(image))
    ref.load()  # refused here, naming the file, rather than deep inside generation
    return ref


def _layout_sample(person, garment: ImageRef | None, pose, caption: str | None) -> TryOnSample:
    """A person of a VITON-HD layout, with the layout's masked person, mask and pose render."""
    if not isinstance(person, (str, Path)):
        raise DataError("person: a picture without a mask: give the mask of the region to redraw "
                        "(white = redraw), or a person photo that lies in a VITON-HD layout")
    path = Path(person)
    if path.parent.name != PERSON_FOLDER:
        raise DataError(f"{path}: no mask given and the person is not in a VITON-HD layout "
                        f"(ROOT/SPLIT/{PERSON_FOLDER}/STEM.jpg): give the mask of the region to redraw")
    root, split = path.parent.parent.parent, path.parent.parent.name
    paths = sample_paths(root, split, path.name, path.name, paired=True)
    person_ref = _ref(path, "person")
    for key in ("agnostic", "pose_image"):
        if not paths[key].is_file():
            raise DataError(f"{path}: no mask given and its VITON-HD layout lacks {paths[key]}")
    mask_ref = ImageRef(paths["agnostic_mask"]) if paths["agnostic_mask"].is_file() \
        else ImageRef(paths["agnostic"], grey_paint_mask=True)
    return TryOnSample(
        person_id=path.name, garment_id=garment.path.name if garment else "", split=split, paired=False,
        person=person_ref, garment=garment, garment_mask=None, agnostic=ImageRef(paths["agnostic"]),
        agnostic_mask=mask_ref, parse=None,
        pose_image=_ref(pose, "pose") if pose is not None else ImageRef(paths["pose_image"]),
        pose_keypoints=NO_POSE, caption=caption)
