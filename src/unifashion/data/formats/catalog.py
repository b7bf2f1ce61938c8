"""Our own product catalogue: `catalog.jsonl` plus `images/` (not a public format).

One JSON object per line with exactly these keys:
  item_id (str), product_id (str), category (str), subcategory (str),
  split ("train" | "val" | "test"), image (str, path relative to the folder, e.g. "images/x.png"),
  title (str), description (str), detailed (str) — the three caption styles: short title,
  professional description, detailed description —, attributes (object: name -> string value),
  and optionally view (object or null: how the image was taken, e.g. {"pose": "front"}).
An unknown key, a missing key or a value of the wrong type makes the line a bad item.

The reader returns `ImageTextPair` with caption=description, title=title and
extra={"detailed": ..., "attributes": {...}, "view": {...} or None}.
The writer writes `images/{item_id}.png` at once and `catalog.jsonl` (keys sorted, one line per
item, in the order added) under a temporary name, renamed on close.

Optionally `vocabulary.json`: {attribute: {value: [phrase, ...]}}, the phrases the texts use to
name each value (read by `load_vocabulary`, used by `evaluation.attributes`).
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from PIL import Image

from unifashion.data.formats.common import (BadItems, LoadReport, StagedWriter, check_name, check_split,
                                            image_problem, require_dir, unicode_problem)
from unifashion.data.samples import ImageRef, ImageTextPair
from unifashion.errors import DataError

FILENAME = "catalog.jsonl"
VOCABULARY_FILE = "vocabulary.json"
SPLITS = ("train", "val", "test")
STRING_KEYS = ("item_id", "product_id", "category", "subcategory", "split", "image", "title", "description",
               "detailed")
KEYS = frozenset((*STRING_KEYS, "attributes", "view"))


def _record_problem(rec) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    for k in (*STRING_KEYS, "attributes"):
        if k not in rec:
            return f"missing key '{k}'"
    unknown = sorted(set(rec) - KEYS)
    if unknown:
        return f"unknown key {unknown[0]!r}"
    for k in STRING_KEYS:
        if not isinstance(rec[k], str):
            return f"'{k}' must be a string, got {type(rec[k]).__name__}"
        if problem := unicode_problem(rec[k]):
            return f"'{k}' is {problem}"
    for k in ("item_id", "product_id", "image"):
        if not rec[k]:
            return f"'{k}' is empty"
    if rec["split"] not in SPLITS:
        return f"unknown split {rec['split']!r} (expected one of: {', '.join(SPLITS)})"
    attrs = rec["attributes"]
    if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
        return "'attributes' must be an object of string values"
    if any(unicode_problem(k) or unicode_problem(v) for k, v in attrs.items()):
        return "'attributes' holds text that is not valid Unicode (a lone surrogate)"
    view = rec.get("view")
    if view is not None and not isinstance(view, dict):
        return f"'view' must be an object or null, got {type(view).__name__}"
    rel = PurePosixPath(rec["image"])
    if rel.is_absolute() or ".." in rel.parts:
        return f"'image' must be a path inside the folder, got {rec['image']!r}"
    return None


def load_vocabulary(root: Path) -> dict[str, dict[str, list[str]]] | None:
    """The catalog's vocabulary.json ({attribute: {value: [phrase, ...]}}), or None when absent."""
    path = Path(root) / VOCABULARY_FILE
    if not path.is_file():
        return None
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({str(e).splitlines()[0]})") from None
    if not (isinstance(vocab, dict) and all(
            isinstance(attr, str) and isinstance(values, dict) and all(
                isinstance(v, str) and isinstance(ps, list) and all(isinstance(p, str) and p for p in ps)
                for v, ps in values.items())
            for attr, values in vocab.items())):
        raise DataError(f"{path}: expected {{attribute: {{value: [non-empty phrase, ...]}}}} of strings")
    return vocab


def load(root: Path, split: str | None = None, *, skip_bad: bool = False, report: LoadReport | None = None,
         check_images: bool = False) -> list[ImageTextPair]:
    """Catalogue items, all or one split's, in file order."""
    root = require_dir(root, "catalog", FILENAME)
    path = root / FILENAME
    if not path.is_file():
        raise DataError(f"{root}: not a catalog folder (no {FILENAME})")
    if split is not None:
        check_split(split, SPLITS, "catalog")
    bad = BadItems(skip_bad, report)
    out: list[ImageTextPair] = []
    seen: set[str] = set()
    try:
        raw_lines = path.read_bytes().split(b"\n")  # JSON Lines: records end at "\n" only
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    for lineno, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            bad.bad(where, f"not UTF-8 text ({e.reason} at byte {e.start})")
            continue
        except json.JSONDecodeError as e:
            bad.bad(where, f"malformed JSON ({e.msg}, column {e.colno})")
            continue
        except RecursionError:
            bad.bad(where, "JSON nested too deeply")
            continue
        problem = _record_problem(rec)
        if problem:
            bad.bad(where, problem)
            continue
        if rec["item_id"] in seen:
            bad.bad(where, f"duplicate item_id {rec['item_id']!r}")
            continue
        seen.add(rec["item_id"])
        if split is not None and rec["split"] != split:
            continue
        img = root / rec["image"]
        problem = image_problem(img, check_images)
        if problem:
            bad.bad(where, problem)
            continue
        out.append(ImageTextPair(
            item_id=rec["item_id"], product_id=rec["product_id"], category=rec["category"],
            subcategory=rec["subcategory"], caption=rec["description"], image=ImageRef(img),
            split=rec["split"], title=rec["title"],
            extra={"detailed": rec["detailed"], "attributes": dict(rec["attributes"]), "view": rec.get("view")},
        ))
    return out


class CatalogWriter(StagedWriter):
    """Streams `catalog.jsonl` (temporary name until close) and writes `images/{item_id}.png`."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.path = self.root / FILENAME
        self._f = open(self.stage(self.path), "w", encoding="utf-8", newline="\n")
        self._ids: set[str] = set()

    def add(self, item_id: str, product_id: str, category: str, subcategory: str, split: str, image: Image.Image,
            title: str, description: str, detailed: str, attributes: dict, view: dict | None = None) -> None:
        check_name(item_id, "catalog item_id")
        if item_id in self._ids:
            raise DataError(f"catalog item_id '{item_id}' added twice")
        rec = {
            "item_id": item_id, "product_id": str(product_id), "category": category, "subcategory": subcategory,
            "split": split, "image": f"images/{item_id}.png", "title": title, "description": description,
            "detailed": detailed, "attributes": dict(attributes), "view": view,
        }
        problem = _record_problem(rec)
        if problem:
            raise DataError(f"catalog item '{item_id}': {problem}")
        self.save_image(image.convert("RGB"), self.root / rec["image"])
        self._f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
        self._ids.add(item_id)

    def _finish(self) -> None:
        self._f.close()

    def _discard(self) -> None:
        self._f.close()
