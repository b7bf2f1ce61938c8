"""Shared pieces of the format readers and writers.

Readers: `LoadReport` and `BadItems` implement the one rule every reader follows — a bad item either
raises `DataError` (skip_bad=False, the default) or is skipped and recorded as one line in
`report.skipped` (skip_bad=True); nothing is dropped silently.

Writers (`StagedWriter`): every file is written under a temporary name in its final folder and
renamed into place only when complete, so an interrupted write never leaves a half file under the
final name. Images are encoded with fixed parameters (PNG: compress level 6, no metadata chunks; JPEG:
quality 95, 4:4:4) so that the same inputs give byte-identical files.
"""
from __future__ import annotations

from collections.abc import Iterator

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from unifashion.data.samples import ImageRef
from unifashion.errors import DataError
from unifashion.storage import replace_file, temporary_sibling, write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 6


@dataclass
class LoadReport:
    """What a reader skipped (only with skip_bad=True): one "file:line: reason" string per item."""

    skipped: list[str] = field(default_factory=list)


class BadItems:
    """Raise on the first bad item, or skip it and record why (skip_bad=True)."""

    def __init__(self, skip_bad: bool, report: LoadReport | None):
        self.skip_bad = skip_bad
        self.report = report

    def bad(self, where: str, reason: str) -> None:
        msg = f"{where}: {reason}"
        if not self.skip_bad:
            raise DataError(msg)
        if self.report is not None:
            self.report.skipped.append(msg)
        else:  # skipping without a report to fill: still say so, never drop silently
            log.warning("skipped %s", msg)


def require_dir(root: Path, fmt: str, what: str) -> Path:
    """`root` as a Path; DataError naming it when it is missing or not a folder."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: {fmt} root not found")
    if not root.is_dir():
        raise DataError(f"{root}: {fmt} root is not a folder (expected {what})")
    return root


def check_split(split: str, allowed: tuple[str, ...], fmt: str) -> str:
    if split not in allowed:
        raise DataError(f"unknown {fmt} split '{split}' (expected one of: {', '.join(allowed)})")
    return split


def image_problem(path: Path, check_images: bool) -> str | None:
    """Why the image file at `path` is unusable, or None. Cheap stat unless `check_images`."""
    if check_images:
        try:
            ImageRef(path).load()
        except DataError as e:
            return str(e)
        return None
    if not path.is_file():
        return f"image file not found: {path}"
    return None


def read_text_file(path: Path) -> str:
    """A UTF-8 text file's content; DataError naming the file when it is missing, unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:  # a folder where a file should be, no permission, an I/O error
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def text_lines(text: str) -> list[str]:
    """Lines split at "\n" only (with a "\r" before it dropped), as the releases' own loaders read
    them (`f.readlines()`): `str.splitlines` would also split at \v, \f, \x1c-\x1e, \x85, U+2028
    and U+2029, which may occur inside a description."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_json(text: str, where: str):
    """One JSON value; DataError naming `where` (and the line) when malformed or absurdly nested."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}:{e.lineno}: malformed JSON ({e.msg}, column {e.colno})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None


def read_json_file(path: Path):
    """Parse one JSON document; DataError naming the file, line and column on malformed JSON."""
    return parse_json(read_text_file(path), str(path))


def unicode_problem(value: str) -> str | None:
    """Why `value` cannot be written as UTF-8 (JSON's "\\ud800" escapes decode to lone surrogates), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"not valid Unicode (a lone surrogate) in {value[:40]!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Writing


class StagedWriter:
    """What every dataset writer shares: its root folder; files streamed under a temporary name
    (`stage`), renamed into place by `close` after the subclass's `_finish` (what is written last:
    label and index files); `abort` (leaving the context with an exception) discards them and any
    file the subclass has open (`_discard`). A second close or abort does nothing.

    Each file is atomic but not fsynced: a dataset is many files (57k in the quickstart world, at
    about 3.6 ms a fsync) written into a folder that its caller publishes whole (the world renames
    its `.partial` folder), so a crash is handled by writing it again."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self._closed = False

    def stage(self, path: Path) -> Path:
        """The temporary name to stream `path` into: renamed to `path` on close, removed on abort."""
        tmp = temporary_sibling(path)
        self._staged.append((tmp, path))
        return tmp

    def write_text(self, path: Path, text: str) -> None:
        write_text_atomic(path, text, durable=False)

    def write_bytes(self, path: Path, data: bytes) -> None:
        write_bytes_atomic(path, data, durable=False)

    def save_image(self, image: Image.Image, path: Path) -> None:
        save_image_atomic(image, path, durable=False)

    def _finish(self) -> None:
        """Write what is written on close and close the files being streamed."""

    def _discard(self) -> None:
        """Close the files being streamed without finishing them."""

    def close(self) -> None:
        if self._closed:
            return
        self._finish()
        for tmp, path in self._staged:
            replace_file(tmp, path, durable=False)
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        try:
            self._discard()
        finally:
            for tmp, _ in self._staged:
                tmp.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def json_dumps(obj) -> str:
    """Deterministic JSON text (the writers' one serialisation)."""
    return json.dumps(obj, ensure_ascii=False, indent=1) + "\n"


def as_pil(image, what: str) -> Image.Image:
    """A PIL image from a PIL image or an (H, W[, C]) uint8 array."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise DataError(f"{what}: expected an HxW or HxWxC uint8 array, got {image.shape} {image.dtype}")
        return Image.fromarray(image)
    raise DataError(f"{what}: expected a PIL image or numpy array, got {type(image).__name__}")


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """Encode with fixed parameters: the same pixels give the same bytes."""
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    elif fmt == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def save_image_atomic(image: Image.Image, path: Path, *, durable: bool = True) -> None:
    """Encode by the file's suffix (.png: PNG, else JPEG) and write atomically (`storage.write_bytes_atomic`)."""
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    write_bytes_atomic(path, encode_image(image, fmt), durable=durable)


def check_text_field(value, what: str, *, single_line: bool = True, allow_tab: bool = True) -> str:
    if not isinstance(value, str):
        raise DataError(f"{what}: expected a string, got {type(value).__name__}")
    if single_line and ("\n" in value or "\r" in value):
        raise DataError(f"{what}: must be one line (contains a line break): {value!r}")
    if not allow_tab and "\t" in value:
        raise DataError(f"{what}: must not contain a tab: {value!r}")
    return value


def check_name(value: str, what: str) -> str:
    """A file-name-safe identifier (no folder separators, not empty, no leading dot)."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value.startswith(".") \
            or any(c in value for c in "\n\r\t\0"):
        raise DataError(f"{what}: not usable as a file name: {value!r}")
    return value


def two_column_lines(path: Path, expected: str, bad: BadItems) -> Iterator[tuple[str, str, str]]:
    """(where, first, second) per non-empty line of a whitespace-separated two-column text file;
    a line with another number of fields is a bad item ("expected `expected`")."""
    for lineno, line in enumerate(text_lines(read_text_file(path)), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) != 2:
            bad.bad(where, f"expected '{expected}', got {len(parts)} fields")
            continue
        yield where, parts[0], parts[1]
