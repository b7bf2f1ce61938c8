"""VITON-HD (zalando-hd-resized) with MGD's additions, read and written.

Layout (verified): the dataset root holds `train_pairs.txt`, `test_pairs.txt` (one line per person
image, `person.jpg cloth.jpg`), and `train/`, `test/` with, per person stem `S` (e.g. `00006_00`):
- `image/S.jpg` person; `cloth/S.jpg` in-shop garment; `cloth-mask/S.jpg` garment mask (a JPEG,
  loaders threshold it at 128);
- `image-parse-v3/S.png` human parsing, palette PNG with labels 0..19 (CIHP);
  `image-parse-agnostic-v3.2/S.png` the parse with the try-on region cleared;
- `agnostic-v3.2/S.jpg` person with the garment region painted grey (PIL 'gray' = 128);
- `agnostic-mask/S_mask.png` the inpainting mask (white = region to inpaint) — StableVITON's
  loader reads it and its README says the VITON-HD release provides it;
- `openpose_img/S_rendered.png`, `openpose_json/S_keypoints.json` — OpenPose JSON,
  `{"people": [{"pose_keypoints_2d": [x, y, c] * 25, ...}]}`: the release uses the BODY_25 model
  (25 points, e.g. HR-VITON takes hips at 9 and 12), not COCO-18;
- `image-densepose/S.jpg` (DensePose render; our writer has no DensePose and does not write it).
The pair files: `test_pairs.txt` is the unpaired test setting (cloth differs from person); the
paired setting takes the first column of the same file and each person's own garment (MGD,
StableVITON and HR-VITON all do this; StableVITON's copy of `train_pairs.txt` is also shuffled,
so `train` likewise reads persons from the first column).

MGD (aimagelab/multimodal-garment-designer) adds, for VITON-HD:
- `captions.json` at the root: `{cloth id: [phrases]}` where the id is the cloth name before the
  first underscore (`"03191": ["white petite t-shirt ...", ...]`); MGD keeps entries with >= 3
  phrases and joins them with ", ". This reader joins all phrases with ", " (no filtering).
- `{split}/im_sketch/S.png` (paired) and `{split}/im_sketch_unpaired/{person stem}_{cloth stem}.png`
  (unpaired) garment sketches.

Sources checked: aimagelab/multimodal-garment-designer `src/datasets/vitonhd.py` and
`assets/data/vitonhd/` (captions.json, test/im_sketch/03191_00.png,
test/im_sketch_unpaired/03191_00_00349_00.png, openpose_json/03191_00_keypoints.json with 75
values, test_pairs.txt), MGD's `get_coco_body25_mapping` (COCO i -> BODY_25: 0-7 same, 8..17 ->
9..18), rlawjdghek/StableVITON `dataset.py` and README (agnostic-v3.2, agnostic-mask/S_mask.png,
image-densepose, cloth), sangyun884/HR-VITON `cp_dataset.py` (image-parse-v3, image-parse-agnostic-v3.2,
openpose_img/S_rendered.png, openpose_json/S_keypoints.json, cloth-mask/{cloth name}) and
`Preprocessing.md` (parse maps are P-mode PNGs with values 0..19), shadow2496/VITON-HD `datasets.py`.

Reader semantics: `TryOnSample.pose_keypoints` is (18, 3) COCO order (BODY_25 files are mapped,
54-value COCO files taken as they are). The agnostic mask comes from `agnostic-mask/` when that
folder exists; otherwise it is DERIVED from `agnostic-v3.2` (pixels within 12 of grey 128 in all
channels) and written as `S_mask.png` into `derive_masks_to` (default: the release's own
`{split}/agnostic-mask/`, so a later read finds it). A missing required file, an unreadable pose
JSON or a malformed pair line is a bad item ("file:line: reason"). When a sketch folder exists,
a sample without its sketch is a bad item; without the folder `sketch` is None. `caption` is None
when there is no `captions.json` or it lacks the cloth id.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from unifashion.data.formats.common import (BadItems, LoadReport, StagedWriter, as_pil, check_name, check_split,
                                            check_text_field, image_problem, json_dumps, read_json_file, require_dir,
                                            two_column_lines)
from unifashion.data.samples import ImageRef, TryOnSample
from unifashion.errors import DataError

SPLITS = ("train", "test")
CAPTIONS = "captions.json"
# COCO-18 index -> BODY_25 index (MGD's get_coco_body25_mapping)
COCO_TO_BODY25 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
# CIHP 20-class palette (the colours only visualise; the pixel values are the labels)
PARSE_PALETTE = [0, 0, 0, 128, 0, 0, 254, 0, 0, 0, 85, 0, 169, 0, 51, 254, 85, 0, 0, 0, 85, 0, 119, 220,
                 85, 85, 0, 0, 85, 85, 85, 51, 0, 52, 86, 128, 0, 128, 0, 0, 0, 254, 51, 169, 220, 0, 254, 254,
                 85, 254, 169, 169, 254, 85, 254, 254, 0, 254, 169, 0]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def caption_key(cloth_name: str) -> str:
    """MGD's captions.json key for a cloth image name: the part before the first underscore."""
    return cloth_name.split("_")[0]


def sample_paths(root: Path, split: str, person: str, cloth: str, paired: bool) -> dict[str, Path]:
    """Every file a sample uses, by TryOnSample field (sketch and agnostic mask: where expected)."""
    d = Path(root) / split
    p, c = _stem(person), _stem(cloth)
    return {
        "person": d / "image" / person, "garment": d / "cloth" / cloth,
        "garment_mask": d / "cloth-mask" / cloth, "agnostic": d / "agnostic-v3.2" / person,
        "agnostic_mask": d / "agnostic-mask" / f"{p}_mask.png", "parse": d / "image-parse-v3" / f"{p}.png",
        "pose_image": d / "openpose_img" / f"{p}_rendered.png",
        "pose_json": d / "openpose_json" / f"{p}_keypoints.json",
        "sketch": d / "im_sketch" / f"{p}.png" if paired else d / "im_sketch_unpaired" / f"{p}_{c}.png",
    }


def read_pose(path: Path) -> np.ndarray:
    """(18, 3) COCO-order keypoints from an OpenPose JSON (BODY_25 or COCO-18); DataError if unusable."""
    data = read_json_file(path)
    try:
        values = data["people"][0]["pose_keypoints_2d"]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"{path}: no people[0].pose_keypoints_2d") from None
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: pose_keypoints_2d is not a list of numbers") from None
    if arr.shape == (75,):
        return arr.reshape(25, 3)[COCO_TO_BODY25].astype(np.float32)
    if arr.shape == (54,):
        return arr.reshape(18, 3).astype(np.float32)
    raise DataError(f"{path}: pose_keypoints_2d has {arr.size} values (expected 75 for BODY_25 or 54 for COCO-18)")


def pose_json(keypoints: np.ndarray) -> dict:
    """OpenPose BODY_25 JSON for (18, 3) COCO keypoints (MidHip = mean of the hips, feet zero)."""
    k = np.asarray(keypoints, dtype=np.float64)
    if k.shape != (18, 3):
        raise DataError(f"pose keypoints must be (18, 3), got {k.shape}")
    b = np.zeros((25, 3))
    b[COCO_TO_BODY25] = k
    if k[8, 2] > 0 and k[11, 2] > 0:
        b[8] = [(k[8, 0] + k[11, 0]) / 2, (k[8, 1] + k[11, 1]) / 2, min(k[8, 2], k[11, 2])]
    flat = [float(np.float32(v)) for v in b.reshape(-1)]
    return {"version": 1.3, "people": [{
        "person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
        "hand_right_keypoints_2d": [], "pose_keypoints_3d": [], "face_keypoints_3d": [],
        "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}]}


def read_pairs(root: Path, split: str, paired: bool, bad: BadItems) -> list[tuple[str, str, str]]:
    """(where, person, cloth) per line of `{split}_pairs.txt`."""
    path = Path(root) / f"{split}_pairs.txt"
    if not path.is_file():
        raise DataError(f"{path}: VITON-HD pair list not found")
    out = []
    for where, person, cloth in two_column_lines(path, "person.jpg cloth.jpg", bad):
        if any("/" in q or "\\" in q or q.startswith(".") for q in (person, cloth)):
            bad.bad(where, f"bad image name in {person!r} {cloth!r}")
            continue
        out.append((where, person, person if paired else cloth))
    return out


def load(root: Path, split: str, *, paired: bool, skip_bad: bool = False, report: LoadReport | None = None,
         check_images: bool = False) -> list[TryOnSample]:
    """Try-on samples of one split ("train" | "test"), in pair-file order."""
    root = require_dir(root, "VITON-HD", "train_pairs.txt / test_pairs.txt and train/ / test/")
    check_split(split, SPLITS, "VITON-HD")
    if not (root / split).is_dir():
        raise DataError(f"{root}: not a VITON-HD root (no {split}/ folder)")
    bad = BadItems(skip_bad, report)
    pairs = read_pairs(root, split, paired, bad)
    captions = read_captions(root)
    has_mask_dir = (root / split / "agnostic-mask").is_dir()
    sketch_dir = root / split / ("im_sketch" if paired else "im_sketch_unpaired")
    has_sketches = sketch_dir.is_dir()
    out: list[TryOnSample] = []
    for where, person, cloth in pairs:
        paths = sample_paths(root, split, person, cloth, paired)
        required = ["person", "garment", "garment_mask", "agnostic", "parse", "pose_image"]
        if has_mask_dir:
            required.append("agnostic_mask")
        if has_sketches:
            required.append("sketch")
        problem = next((p for k in required if (p := image_problem(paths[k], check_images))), None)
        if problem:
            bad.bad(where, problem)
            continue
        try:
            keypoints = read_pose(paths["pose_json"])
        except DataError as e:
            bad.bad(where, str(e))
            continue
        phrases = captions.get(caption_key(cloth)) if captions is not None else None
        out.append(TryOnSample(
            person_id=person, garment_id=cloth, split=split, paired=paired,
            person=ImageRef(paths["person"]), garment=ImageRef(paths["garment"]),
            garment_mask=ImageRef(paths["garment_mask"]), agnostic=ImageRef(paths["agnostic"]),
            agnostic_mask=ImageRef(paths["agnostic_mask"]) if has_mask_dir
            else ImageRef(paths["agnostic"], grey_paint_mask=True), parse=ImageRef(paths["parse"]),
            pose_image=ImageRef(paths["pose_image"]), pose_keypoints=keypoints,
            sketch=ImageRef(paths["sketch"]) if has_sketches else None,
            caption=", ".join(phrases) if phrases is not None else None,
        ))
    return out


def read_captions(root: Path) -> dict[str, list[str]] | None:
    path = root / CAPTIONS
    if not path.is_file():
        return None
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{cloth id: [phrases]}}, got {type(data).__name__}")
    for k, v in data.items():
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise DataError(f"{path}: entry {k!r} must be a list of strings, got {v!r}")
    return data


class VitonHDWriter(StagedWriter):
    """Writes the VITON-HD release layout plus MGD's captions and sketches.

    `add` writes a person's files at once; `close` writes `{split}_pairs.txt` (one line per person,
    in the order added: the cloth given by `add_pair`, else the person's own), `captions.json`
    (cloth id -> the caption split at ", ") and the unpaired sketches
    `im_sketch_unpaired/{person}_{cloth}.png` (a copy of the cloth's own sketch: our world has no
    re-posed sketches). Not written: `image-densepose/` (no DensePose here).
    `image-parse-agnostic-v3.2` is the parse with the agnostic-mask region set to 0 (background).
    """

    def __init__(self, root: Path):
        super().__init__(root)
        self._persons: dict[str, list[str]] = {}
        self._pairs: dict[tuple[str, str], str] = {}
        self._has_sketch: dict[tuple[str, str], bool] = {}
        self._captions: dict[str, list[str]] = {}

    def add(self, split: str, stem: str, images, caption: str | None) -> None:
        check_split(split, SPLITS, "VITON-HD")
        check_name(stem, "VITON-HD stem")
        if "." in stem or " " in stem:
            raise DataError(f"VITON-HD stem must not contain '.' or spaces: {stem!r}")
        if stem in self._persons.get(split, []):
            raise DataError(f"VITON-HD {split} person {stem} added twice")
        name = f"{stem}.jpg"
        paths = sample_paths(self.root, split, name, name, paired=True)
        what = f"VITON-HD {split}/{stem}"
        person = as_pil(images.person, f"{what} person").convert("RGB")
        mask = as_pil(images.agnostic_mask, f"{what} agnostic_mask").convert("L")
        parse = _parse_image(images.parse, f"{what} parse")
        self.save_image(person, paths["person"])
        self.save_image(as_pil(images.garment, f"{what} garment").convert("RGB"), paths["garment"])
        self.save_image(as_pil(images.garment_mask, f"{what} garment_mask").convert("L"), paths["garment_mask"])
        self.save_image(as_pil(images.agnostic, f"{what} agnostic").convert("RGB"), paths["agnostic"])
        self.save_image(mask.point(lambda v: 255 if v >= 128 else 0), paths["agnostic_mask"])
        self.save_image(parse, paths["parse"])
        parse_arr = np.asarray(parse).copy()
        parse_arr[np.asarray(mask) >= 128] = 0
        agn_parse = Image.fromarray(parse_arr, "P")
        agn_parse.putpalette(PARSE_PALETTE)
        self.save_image(agn_parse, self.root / split / "image-parse-agnostic-v3.2" / f"{stem}.png")
        self.save_image(as_pil(images.pose_image, f"{what} pose_image").convert("RGB"), paths["pose_image"])
        self.write_text(paths["pose_json"], json.dumps(pose_json(images.pose_keypoints)) + "\n")
        sketch = getattr(images, "sketch", None)
        if sketch is not None:
            self.save_image(as_pil(sketch, f"{what} sketch").convert("L"), paths["sketch"])
        self._has_sketch[(split, stem)] = sketch is not None
        if caption is not None:
            check_text_field(caption, f"{what} caption")
            key = caption_key(name)
            phrases = caption.split(", ")
            if key in self._captions and self._captions[key] != phrases:
                raise DataError(f"{what}: caption id '{key}' already has a different caption "
                                f"(MGD keys captions by the cloth name before '_')")
            self._captions[key] = phrases
        self._persons.setdefault(split, []).append(stem)

    def add_pair(self, split: str, person_stem: str, cloth_stem: str) -> None:
        """The unpaired garment for `person_stem` (one per person, as in the released test_pairs.txt)."""
        check_split(split, SPLITS, "VITON-HD")
        check_name(person_stem, "VITON-HD person stem")
        check_name(cloth_stem, "VITON-HD cloth stem")
        if (split, person_stem) in self._pairs:
            raise DataError(f"VITON-HD {split} person {person_stem} already has a pair")
        self._pairs[(split, person_stem)] = cloth_stem

    def _finish(self) -> None:
        for (split, person), cloth in self._pairs.items():
            for stem in (person, cloth):
                if stem not in self._persons.get(split, []):
                    raise DataError(f"VITON-HD {split} pair {person} {cloth}: {stem} was never added")
        for split, persons in sorted(self._persons.items()):
            lines = []
            for p in persons:
                c = self._pairs.get((split, p), p)
                lines.append(f"{p}.jpg {c}.jpg")
                if c != p and self._has_sketch.get((split, c)):
                    src = self.root / split / "im_sketch" / f"{c}.png"
                    self.write_bytes(self.root / split / "im_sketch_unpaired" / f"{p}_{c}.png", src.read_bytes())
            self.write_text(self.root / f"{split}_pairs.txt", "\n".join(lines) + "\n")
        if self._captions:
            self.write_text(self.root / CAPTIONS, json_dumps(dict(sorted(self._captions.items()))))


def _parse_image(parse, what: str) -> Image.Image:
    """A P-mode parse map with the CIHP palette; values must be labels 0..19."""
    img = as_pil(parse, what)
    if img.mode not in ("P", "L"):
        raise DataError(f"{what}: parse map must be a P or L image of labels 0..19, got mode {img.mode}")
    arr = np.asarray(img)
    if arr.size and int(arr.max()) > 19:
        raise DataError(f"{what}: parse label {int(arr.max())} out of range 0..19")
    out = Image.fromarray(arr.astype(np.uint8), "P")
    out.putpalette(PARSE_PALETTE)
    return out


__all__ = ["load", "read_pose", "pose_json", "VitonHDWriter", "sample_paths",
           "caption_key"]
