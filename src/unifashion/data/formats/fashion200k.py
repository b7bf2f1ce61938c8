"""Fashion200K: label files and image tree, read and written.

Layout (verified): the dataset root holds
- `labels/{category}_{split}_detect_all.txt` for category in dress, jacket, pants, skirt, top
  (our world adds `shoes` and `bag`; any `*_{split}_detect_all.txt` is read) and split train/test;
  one image per line: `image_path<TAB>detection_score<TAB>description`.
- images at `image_path` relative to the root:
  `women/{category folder}/{subcategory}/{product_id}/{product_id}_{k}.jpeg`, e.g.
  `women/dresses/casual_and_day_dresses/51727804/51727804_0.jpeg` (category folders are plural:
  dresses, jackets, pants, skirts, tops; subcategory folders use underscores).
- `test_queries.txt` at the root, read by TIRG for composed retrieval: one query per line,
  `source_image_path target_image_path` separated by whitespace (`line.split()`), both paths as
  written in the label files.

Sources checked: google/tirg `datasets.py` (class Fashion200k: label files are every file in
`labels/` whose name contains the split; `line.split('\t')` -> file_path, detection_score,
captions=[line[2].strip()]; images opened at `path + '/' + file_path`; `test_queries.txt` at
`path + '/test_queries.txt'`, `source_file, target_file = line.split()`); image paths as quoted
in several public repos (e.g. `women/dresses/casual_and_day_dresses/51727804/51727804_0.jpeg`);
a TIRG training log listing `{pants,dress,jacket,skirt,top}_{train,test}_detect_all.txt`.

Reader semantics: `category` is the label file's prefix (dress, top, ...), `subcategory` the
third path component with underscores turned into spaces, `product_id` the image's parent
folder name, `item_id` the relative image path, `caption` and `title` the description,
`extra = {"detection_score": float, "label_file": name}`. Blank lines are ignored. A line without
exactly three tab-separated fields, a non-numeric score, an empty description, or a missing image
is a bad item.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from PIL import Image

from unifashion.data.formats.common import (BadItems, LoadReport, StagedWriter, check_name, check_split,
                                            check_text_field, image_problem, read_text_file, require_dir, text_lines,
                                            two_column_lines)
from unifashion.data.samples import ImageRef, ImageTextPair
from unifashion.errors import DataError

SPLITS = ("train", "test")
LABEL_RE = re.compile(r"^(.+)_(train|test)_detect_all\.txt$")
TEST_QUERIES = "test_queries.txt"


def category_folder(category: str) -> str:
    """Label-file category -> image folder name (dress -> dresses, pants -> pants)."""
    if category.endswith("ss"):
        return category + "es"
    return category if category.endswith("s") else category + "s"


def subcategory_folder(subcategory: str) -> str:
    return subcategory.strip().lower().replace(" ", "_")


def label_files(root: Path, split: str) -> list[tuple[str, Path]]:
    """(category, path) of every label file of `split`, sorted by category."""
    root = require_dir(root, "Fashion200K", "a labels/ folder")
    check_split(split, SPLITS, "Fashion200K")
    labels = root / "labels"
    if not labels.is_dir():
        raise DataError(f"{root}: not a Fashion200K root (no labels/ folder)")
    out = []
    for p in sorted(labels.iterdir()):
        m = LABEL_RE.match(p.name)
        if m and m.group(2) == split and p.is_file():
            out.append((m.group(1), p))
    if not out:
        raise DataError(f"{labels}: no label files for split '{split}' (looked for *_{split}_detect_all.txt)")
    return out


def _safe_rel(rel: str) -> PurePosixPath | None:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        return None
    return p


def load(root: Path, split: str, *, skip_bad: bool = False, report: LoadReport | None = None,
         check_images: bool = False) -> list[ImageTextPair]:
    """Image-text pairs of one split ("train" | "test"), label files in category order."""
    root = Path(root)
    files = label_files(root, split)
    bad = BadItems(skip_bad, report)
    out: list[ImageTextPair] = []
    for category, path in files:
        for lineno, line in enumerate(text_lines(read_text_file(path)), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            parts = line.split("\t")
            if len(parts) != 3:
                bad.bad(where, f"expected 3 tab-separated fields (image_path, detection_score, description), "
                        f"got {len(parts)}")
                continue
            rel, score_s, description = parts[0].strip(), parts[1].strip(), parts[2].strip()
            try:
                score = float(score_s)
            except ValueError:
                bad.bad(where, f"detection score is not a number: {score_s!r}")
                continue
            if not description:
                bad.bad(where, "empty description")
                continue
            relp = _safe_rel(rel)
            if relp is None or len(relp.parts) < 2:
                bad.bad(where, f"bad image path {rel!r}")
                continue
            problem = image_problem(root / relp, check_images)
            if problem:
                bad.bad(where, problem)
                continue
            sub = relp.parts[2].replace("_", " ") if len(relp.parts) >= 5 else ""
            out.append(ImageTextPair(
                item_id=rel, product_id=relp.parent.name, category=category, subcategory=sub,
                caption=description, image=ImageRef(root / relp), split=split, title=description,
                extra={"detection_score": score, "label_file": path.name},
            ))
    return out


def load_test_queries(root: Path, *, skip_bad: bool = False, report: LoadReport | None = None,
                      check_images: bool = False) -> list[tuple[str, str]]:
    """(source, target) relative image paths from `test_queries.txt` (TIRG's test protocol)."""
    root = require_dir(root, "Fashion200K", "a labels/ folder")
    path = root / TEST_QUERIES
    if not path.is_file():
        raise DataError(f"{path}: Fashion200K test query file not found")
    bad = BadItems(skip_bad, report)
    out = []
    for where, *parts in two_column_lines(path, "source_path target_path", bad):
        problems = [p for p in (image_problem(root / q, check_images) if _safe_rel(q) else f"bad image path {q!r}"
                                for q in parts) if p]
        if problems:
            bad.bad(where, problems[0])
            continue
        out.append((parts[0], parts[1]))
    return out


class Fashion200kWriter(StagedWriter):
    """Writes the release layout: JPEG images at once, label files and test queries on close."""

    def __init__(self, root: Path):
        super().__init__(root)
        self._lines: dict[tuple[str, str], list[str]] = {}
        self._queries: list[str] = []
        self._paths: set[str] = set()

    def add(self, split: str, category: str, subcategory: str, product_id: str | int, view_index: int,
            image: Image.Image, description: str, detection_score: float = 1.0) -> str:
        """Write one image and queue its label line; returns the image path relative to the root."""
        check_split(split, SPLITS, "Fashion200K")
        check_name(category, "Fashion200K category")
        if "_" in category:
            raise DataError(f"Fashion200K category must not contain '_': {category!r}")
        pid = check_name(str(product_id), "Fashion200K product id")
        check_text_field(description, "Fashion200K description", allow_tab=False)
        if not description.strip():
            raise DataError("Fashion200K description is empty")
        sub = check_name(subcategory_folder(subcategory), "Fashion200K subcategory")
        rel = f"women/{category_folder(category)}/{sub}/{pid}/{pid}_{int(view_index)}.jpeg"
        if rel in self._paths:
            raise DataError(f"Fashion200K image {rel} added twice")
        self._paths.add(rel)
        self.save_image(image.convert("RGB"), self.root / rel)
        self._lines.setdefault((category, split), []).append(f"{rel}\t{float(detection_score)!r}\t{description}")
        return rel

    def add_test_query(self, source_rel: str, target_rel: str) -> None:
        for q in (source_rel, target_rel):
            if q not in self._paths:
                raise DataError(f"Fashion200K test query names an image not written: {q}")
        self._queries.append(f"{source_rel} {target_rel}")

    def _finish(self) -> None:
        for (category, split), lines in sorted(self._lines.items()):
            self.write_text(self.root / "labels" / f"{category}_{split}_detect_all.txt", "\n".join(lines) + "\n")
        if self._queries:
            self.write_text(self.root / TEST_QUERIES, "\n".join(self._queries) + "\n")
