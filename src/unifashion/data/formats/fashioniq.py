"""Fashion-IQ: relative-caption triplets and image splits, read and written.

Layout (verified): the dataset root holds
- `captions/cap.{category}.{split}.json`: a JSON list of
  `{"target": asin, "candidate": asin, "captions": [two strings]}` (the release writes "target"
  first); category in dress, shirt, toptee (ours adds bottoms, outerwear, footwear, bags; the
  categories are discovered from the file names), split in train, val, test.
- `image_splits/split.{category}.{split}.json`: a JSON list of image names (ASINs).
- `images/{asin}.png` — the extension differs between loaders: xiangyu-mm/UniFashion
  `src/data_utils.py` (SPRC lineage) opens `fashionIQ_dataset/images/{name}.png`, ABaldrati/CLIP4Cir
  `src/data_utils.py` opens `images/{name}.jpg`. Our writer writes `.png` (the UniFashion/SPRC
  layout); the reader takes `.png` and falls back to `.jpg`.

Sources checked: ABaldrati/CLIP4Cir `src/data_utils.py` (FashionIQDataset: `captions/cap.{dress_type}
.{split}.json`, `image_splits/split.{dress_type}.{split}.json`, keys `candidate`, `target`,
`captions`), xiangyu-mm/UniFashion `src/data_utils.py` and `process_raw_data.py` (same files, `.png`
images), BrandonHanx/FAME-ViL `mmf/datasets/builders/fashioniq/database.py` (`cap.{class}.{split}.json`,
`", ".join(item["captions"])`).

Image descriptions ("Fashion-IQ-cap", paper Appendix C): the release has none; the paper annotates
the training images with an MLLM. We keep such descriptions beside the release as
`image_captions.json` ({image name: description}): the synthetic world writes its ground-truth
detailed descriptions there, and for real Fashion-IQ the captioner writes them (training images,
prompted only with keywords from the training split's relative captions).

Reader semantics: a triplet whose entry lacks "target" (a release that withholds test targets)
has `target_id=None, target=None`. Each entry must be an object with a string "candidate", a
non-empty list of strings "captions" and, if present, a string "target"; otherwise it is a bad
item ("file[index]: reason"). A missing reference/target image is a bad item. A malformed JSON
file raises DataError naming file and line; with skip_bad=True the whole file is skipped and
reported (other categories still load).
"""
from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from unifashion.data.formats.common import (BadItems, LoadReport, StagedWriter, check_name, check_split,
                                            check_text_field, image_problem, json_dumps, read_json_file, require_dir,
                                            unicode_problem)
from unifashion.data.samples import ImageRef, Triplet
from unifashion.errors import DataError

SPLITS = ("train", "val", "test")
IMAGE_CAPTIONS = "image_captions.json"
CAP_RE = re.compile(r"^cap\.([^.]+)\.(train|val|test)\.json$")
SPLIT_RE = re.compile(r"^split\.([^.]+)\.(train|val|test)\.json$")
IMAGE_EXTS = (".png", ".jpg")


def _root(root: Path) -> Path:
    root = require_dir(root, "Fashion-IQ", "captions/ and image_splits/ folders")
    if not (root / "captions").is_dir():
        raise DataError(f"{root}: not a Fashion-IQ root (no captions/ folder)")
    return root


def categories(root: Path) -> list[str]:
    """Categories named by the caption and image-split files, sorted."""
    root = _root(root)
    cats = {m.group(1) for p in (root / "captions").iterdir() if (m := CAP_RE.match(p.name))}
    if (root / "image_splits").is_dir():
        cats |= {m.group(1) for p in (root / "image_splits").iterdir() if (m := SPLIT_RE.match(p.name))}
    return sorted(cats)


def image_path(root: Path, name: str) -> Path:
    """`images/{name}.png`, or `.jpg` when only that exists."""
    for ext in IMAGE_EXTS:
        p = Path(root) / "images" / f"{name}{ext}"
        if p.is_file():
            return p
    return Path(root) / "images" / f"{name}{IMAGE_EXTS[0]}"


def load_image_captions(root: Path) -> dict[str, str]:
    """{image name: description} from `image_captions.json` (Fashion-IQ-cap); DataError if absent or malformed."""
    root = _root(root)
    path = root / IMAGE_CAPTIONS
    if not path.is_file():
        raise DataError(f"{path}: no image descriptions (Fashion-IQ-cap); write them with the captioner first")
    data = read_json_file(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise DataError(f"{path}: expected an object mapping image names to description strings")
    return data


def load_image_split(root: Path, category: str, split: str) -> list[str]:
    """The image names of one category's split (the retrieval gallery for val/test)."""
    root = _root(root)
    check_split(split, SPLITS, "Fashion-IQ")
    path = root / "image_splits" / f"split.{category}.{split}.json"
    if not path.is_file():
        raise DataError(f"{path}: Fashion-IQ image split not found")
    data = read_json_file(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of image names, got {type(data).__name__}")
    for i, name in enumerate(data):
        if not isinstance(name, str) or not name:
            raise DataError(f"{path}[{i}]: image name must be a non-empty string, got {name!r}")
        if problem := _name_problem(name, "image name"):
            raise DataError(f"{path}[{i}]: {problem}")
    return list(data)


def load(root: Path, split: str, category: str | None = None, *, skip_bad: bool = False,
         report: LoadReport | None = None, check_images: bool = False) -> list[Triplet]:
    """Triplets of one split, for one category or (None) every category that has that split."""
    root = _root(root)
    check_split(split, SPLITS, "Fashion-IQ")
    bad = BadItems(skip_bad, report)
    if category is None:
        cats = sorted(m.group(1) for p in (root / "captions").iterdir()
                      if (m := CAP_RE.match(p.name)) and m.group(2) == split)
        if not cats:
            raise DataError(f"{root / 'captions'}: no caption files for split '{split}' "
                            f"(looked for cap.*.{split}.json)")
    else:
        cats = [category]
    out: list[Triplet] = []
    for cat in cats:
        path = root / "captions" / f"cap.{cat}.{split}.json"
        if not path.is_file():
            raise DataError(f"{path}: Fashion-IQ caption file not found")
        try:
            data = read_json_file(path)
        except DataError as e:
            if not skip_bad:
                raise
            bad.bad(str(path), f"whole file skipped: {e}")
            continue
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of triplets, got {type(data).__name__}")
        for i, entry in enumerate(data):
            where = f"{path}[{i}]"
            reason = _entry_problem(entry)
            if reason:
                bad.bad(where, reason)
                continue
            ref_path = image_path(root, entry["candidate"])
            target = entry.get("target")
            tgt_path = image_path(root, target) if target is not None else None
            problem = image_problem(ref_path, check_images) or (
                image_problem(tgt_path, check_images) if tgt_path is not None else None)
            if problem:
                bad.bad(where, problem)
                continue
            out.append(Triplet(
                category=cat, reference_id=entry["candidate"], target_id=target,
                modifications=tuple(entry["captions"]), reference=ImageRef(ref_path),
                target=ImageRef(tgt_path) if tgt_path is not None else None, split=split,
            ))
    return out


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    if "candidate" not in entry:
        return "missing key 'candidate'"
    if "captions" not in entry:
        return "missing key 'captions'"
    if not isinstance(entry["candidate"], str) or not entry["candidate"]:
        return f"'candidate' must be a non-empty string, got {entry['candidate']!r}"
    if "target" in entry and (not isinstance(entry["target"], str) or not entry["target"]):
        return f"'target' must be a non-empty string, got {entry['target']!r}"
    for key in ("candidate", "target"):
        if key in entry and (problem := _name_problem(entry[key], f"'{key}'")):
            return problem
    caps = entry["captions"]
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
        return f"'captions' must be a non-empty list of strings, got {caps!r}"
    if any(unicode_problem(c) for c in caps):
        return "'captions' holds text that is not valid Unicode (a lone surrogate)"
    return None


def _name_problem(name: str, what: str) -> str | None:
    """An image name names a file in images/: no folders, no leading dot, nothing unprintable."""
    if "/" in name or "\\" in name or name.startswith(".") or any(c in name for c in "\n\r\t\0"):
        return f"{what} is not a plain image name: {name!r}"
    if problem := unicode_problem(name):
        return f"{what} is {problem}"
    return None


class FashionIQWriter(StagedWriter):
    """Writes `images/{name}.png` at once, the caption and image-split JSON files on close."""

    def __init__(self, root: Path):
        super().__init__(root)
        self._triplets: dict[tuple[str, str], list[dict]] = {}
        self._splits: dict[tuple[str, str], list[str]] = {}
        self._images: set[str] = set()
        self._image_captions: dict[str, str] = {}

    def add_image(self, name: str, image: Image.Image) -> None:
        check_name(name, "Fashion-IQ image name")
        if name in self._images:
            raise DataError(f"Fashion-IQ image {name} added twice")
        self._images.add(name)
        self.save_image(image.convert("RGB"), self.root / "images" / f"{name}.png")

    def add_triplet(self, category: str, split: str, candidate: str, target: str | None,
                    captions: list[str] | tuple[str, ...]) -> None:
        check_split(split, SPLITS, "Fashion-IQ")
        check_name(category, "Fashion-IQ category")
        if "." in category:
            raise DataError(f"Fashion-IQ category must not contain '.': {category!r}")
        caps = [check_text_field(c, "Fashion-IQ caption", single_line=False) for c in captions]
        if not caps:
            raise DataError("Fashion-IQ triplet needs at least one caption")
        entry: dict = {}
        if target is not None:  # the release's key order: target, candidate, captions
            entry["target"] = check_name(target, "Fashion-IQ target")
        entry["candidate"] = check_name(candidate, "Fashion-IQ candidate")
        entry["captions"] = caps
        self._triplets.setdefault((category, split), []).append(entry)

    def add_image_caption(self, name: str, description: str) -> None:
        """A description of one image (Fashion-IQ-cap), written to image_captions.json on close."""
        self._image_captions[check_name(name, "Fashion-IQ image name")] = check_text_field(
            description, "Fashion-IQ image description")

    def set_image_split(self, category: str, split: str, names: list[str]) -> None:
        check_split(split, SPLITS, "Fashion-IQ")
        check_name(category, "Fashion-IQ category")
        self._splits[(category, split)] = [check_name(n, "Fashion-IQ image name") for n in names]

    def _finish(self) -> None:
        # every category/split with a gallery gets a caption file, if need be an empty one
        for cat, split in sorted(set(self._triplets) | set(self._splits)):
            entries = self._triplets.get((cat, split), [])
            self.write_text(self.root / "captions" / f"cap.{cat}.{split}.json", json_dumps(entries))
        for (cat, split), names in sorted(self._splits.items()):
            self.write_text(self.root / "image_splits" / f"split.{cat}.{split}.json", json_dumps(names))
        if self._image_captions:
            self.write_text(self.root / IMAGE_CAPTIONS, json_dumps(dict(sorted(self._image_captions.items()))))
