"""A persistent catalog index: per-image query vectors, gallery-caption vectors and item metadata.

On disk (one folder):
    manifest.json            format, model fingerprint, dimensions, counts, revision (+1 on every change),
                             segments with each file's size and sha256 and its removed rows; replaced
                             atomically on every change
    .writer.lock             the writer lock (storage.WriterLock), created by the first change
    segments/seg-000001/     immutable once written (a temporary folder renamed into place):
        items.jsonl          one item per line (CatalogItem)
        image_vectors.npy    (n, Q, E) float16: each image's query embeddings
        caption_vectors.npy  (n, 1, E) float16: each gallery caption's embedding (when built with captions)
        image_ann.faiss      IVF-PQ over the image vectors (segments at or above AnnConfig.exact_below)
        caption_ann.faiss    the same over the caption vectors

Adding items writes a new segment (replacing an item = removing its old row in the same manifest
write); removing items records their rows in the manifest; `compact`
rewrites everything as one segment. Every file is fsynced before the manifest that names it. A crash
leaves the previous manifest, hence the previous index, intact: a segment folder that no manifest
names is ignored and cleaned up by the next write. Rebuilding over an index (`create` with overwrite,
`build.build_index`) writes the new one beside it and swaps the folder in whole
(`storage.replace_dir`); `open` finishes a swap that a crash interrupted.

Two writers are kept apart: a change holds the folder's writer lock (`CatalogIndex.writer`; a second
writer waits or is refused with one line) and, once holding it, refuses to write when the manifest's
revision is no longer the one this object read (another writer changed the index since it was opened).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import faiss
import numpy as np
import torch

from unifashion.data.samples import ImageRef
from unifashion.errors import DataError
from unifashion.storage import (MANIFEST, WriterLock, check_files, file_entries, fsync_dir, read_manifest,
                                 recover_dir, replace_dir, save_manifest, staging_dir, temporary_sibling)
from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, Reduce, VectorFile

FORMAT = "unifashion-index"
FORMAT_VERSION = 1
_DAMAGED = "the index is damaged or incomplete; rebuild it"
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CatalogItem:
    item_id: str
    product_id: str = ""
    category: str = ""
    subcategory: str = ""
    title: str = ""
    text: str = ""  # the catalog's own description, if it has one
    caption: str = ""  # the model's gallery caption, written from the image alone ("" when built without)
    image_path: str = ""  # absolute path of the image file (or HDF5 file)
    image_key: str | None = None  # HDF5 dataset and row, for FashionGen
    image_row: int | None = None

    def image_ref(self) -> ImageRef:
        return ImageRef(Path(self.image_path), self.image_key, self.image_row)

    @classmethod
    def from_json(cls, line: str, where: str) -> "CatalogItem":
        try:
            data = json.loads(line)
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise DataError(f"{where}: bad item line ({e})") from None


@dataclass
class Segment:
    name: str
    items: list[CatalogItem]
    images: MultiVectorIndex  # (n, Q, E)
    captions: MultiVectorIndex | None  # (n, 1, E)
    category_names: list[str] = field(default_factory=list)  # sorted distinct categories of the segment
    category_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # (n,) index into the names

    def __post_init__(self) -> None:
        # integer codes: a category filter over a million items is one vectorised comparison
        self.category_names = sorted({it.category for it in self.items})
        code = {name: i for i, name in enumerate(self.category_names)}
        self.category_codes = np.array([code[it.category] for it in self.items], dtype=np.int32)


def model_fingerprint(model) -> str:
    """sha256 of what decides the retrieval embeddings: the image encoder's and the Q-Former's weights
    and configs. An index is only valid for the model that built it."""
    digest = hashlib.sha256()
    for part in ("image_encoder", "qformer"):
        digest.update(json.dumps(asdict(getattr(model.config, part)), sort_keys=True, default=str).encode())
        for name, tensor in sorted(getattr(model, part).state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy())
    return digest.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class CatalogIndex:
    """The items of a catalog and their vectors, searchable by the model's own scores."""

    def __init__(self, root: Path, manifest: dict, segments: list[Segment]):
        self.root = Path(root)
        self.manifest = manifest
        self.segments = segments
        self._alive: list[np.ndarray] = []  # per segment (n,) bool: rows not removed
        self._where: dict[str, tuple[int, int]] = {}  # live item id -> (segment, row)
        for s, (segment, entry) in enumerate(zip(segments, manifest["segments"])):
            alive = np.ones(len(segment.items), dtype=bool)
            alive[np.asarray(entry["removed"], dtype=np.int64)] = False
            self._alive.append(alive)
            for r in np.flatnonzero(alive):
                item_id = segment.items[r].item_id
                if item_id in self._where:
                    raise DataError(f"{self.root / MANIFEST}: item {item_id!r} is live in two segments")
                self._where[item_id] = (s, int(r))

    # ---- creation and loading -------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, *, fingerprint: str, model_source: str, num_queries: int, embed_dim: int,
               ann: AnnConfig = AnnConfig(), overwrite: bool = False) -> "CatalogIndex":
        """An empty index at `root`. With `overwrite`, an existing index is replaced crash-safely: the
        empty one is written beside it and swapped in whole (everything else in `root` goes with the old),
        holding the old one's writer lock (a change in progress is not swapped away under its writer)."""
        root = Path(root)
        recover_dir(root)
        exists = (root / MANIFEST).exists()
        if exists and not overwrite:
            raise DataError(f"{root}: an index already exists (use --overwrite to replace it)")
        with WriterLock(root, DataError) if exists else nullcontext():
            folder = staging_dir(root) if exists else root
            folder.mkdir(parents=True, exist_ok=True)
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                        "model": {"fingerprint": fingerprint, "source": model_source},
                        "num_queries": num_queries, "embed_dim": embed_dim, "dtype": "float16", "ann": asdict(ann),
                        "segments": [], "count": 0, "revision": 0, "created": _now(), "updated": _now()}
            index = cls(folder, manifest, [])
            index._write_manifest(change=False)
            if exists:
                replace_dir(folder, root)
                index.root = root
        return index

    @classmethod
    def open(cls, root: Path, *, verify: bool = True, ann: AnnConfig | None = None) -> "CatalogIndex":
        """Load an index, checking its manifest, every file's size and (with `verify`) its sha256."""
        root = Path(root)
        recover_dir(root)  # a rebuild interrupted between its two renames left the previous index aside
        path = root / MANIFEST
        manifest = read_manifest(root, DataError, format=FORMAT, version=FORMAT_VERSION)
        if manifest is None:
            raise DataError(f"{root}: not a UniFashion index (no {MANIFEST})")
        if manifest.get("backend", "builtin") != "builtin":  # its vectors are elsewhere
            raise DataError(f"{root}: a {manifest['backend']} index, not the built-in one; open it with "
                            "unifashion.search.index_folder.open_index")
        try:
            config = ann or AnnConfig(**manifest["ann"])
            q, e = int(manifest["num_queries"]), int(manifest["embed_dim"])
            segments = [cls._read_segment(root, entry, q, e, config, verify) for entry in manifest["segments"]]
            for segment, entry in zip(segments, manifest["segments"]):
                rows = [int(r) for r in entry["removed"]]
                if any(not 0 <= r < len(segment.items) for r in rows):
                    raise ValueError(f"segment {entry['name']} removes a row it does not have")
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: malformed manifest ({err})") from None
        return cls(root, manifest, segments)

    @staticmethod
    def _read_segment(root: Path, entry: dict, q: int, e: int, config: AnnConfig, verify: bool) -> Segment:
        folder = root / "segments" / entry["name"]
        check_files(folder, entry["files"], DataError, checksums=verify, hint=_DAMAGED, listed_in=root / MANIFEST)
        items = [CatalogItem.from_json(line, f"{folder / 'items.jsonl'}:{i + 1}")
                 for i, line in enumerate((folder / "items.jsonl").read_text(encoding="utf-8").splitlines())]
        images = VectorFile(folder / "image_vectors.npy")  # rows read when scored, never all mapped
        if images.shape != (len(items), q, e) or images.dtype != np.float16:
            raise DataError(f"{folder / 'image_vectors.npy'}: shape {images.shape} {images.dtype}, "
                            f"expected ({len(items)}, {q}, {e}) float16")
        image_ann = faiss.read_index(str(folder / "image_ann.faiss")) if "image_ann.faiss" in entry["files"] else None
        captions = None
        if "caption_vectors.npy" in entry["files"]:
            cap = VectorFile(folder / "caption_vectors.npy")
            if cap.shape != (len(items), 1, e) or cap.dtype != np.float16:
                raise DataError(f"{folder / 'caption_vectors.npy'}: shape {cap.shape}, expected ({len(items)}, 1, {e})")
            cap_ann = faiss.read_index(str(folder / "caption_ann.faiss")) if "caption_ann.faiss" in entry["files"] else None
            captions = MultiVectorIndex(cap, config, cap_ann)
        return Segment(entry["name"], items, MultiVectorIndex(images, config, image_ann), captions)

    # ---- facts ----------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        return self.manifest["model"]["fingerprint"]

    @property
    def num_queries(self) -> int:
        return int(self.manifest["num_queries"])

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def ann_config(self) -> AnnConfig:
        return AnnConfig(**self.manifest["ann"])

    @property
    def revision(self) -> int:
        """How many changes the manifest has seen (0 when created; absent in older manifests: 0)."""
        return int(self.manifest.get("revision", 0))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._where

    @property
    def has_captions(self) -> bool:
        return bool(self.segments) and all(s.captions is not None for s in self.segments)

    def item(self, item_id: str) -> CatalogItem:
        if item_id not in self:
            raise DataError(f"no item {item_id!r} in the index")
        s, r = self._where[item_id]
        return self.segments[s].items[r]

    def items(self) -> Iterable[CatalogItem]:
        for segment, alive in zip(self.segments, self._alive):
            yield from (it for it, a in zip(segment.items, alive) if a)

    def categories(self) -> list[str]:
        """The categories of the live items."""
        found: set[str] = set()
        for segment, alive in zip(self.segments, self._alive):
            found.update(segment.category_names[c] for c in np.unique(segment.category_codes[alive]))
        return sorted(c for c in found if c)

    def image_vectors(self, item_id: str) -> np.ndarray:
        s, r = self._where[self.item(item_id).item_id]
        return np.asarray(self.segments[s].images.vectors[r], dtype=np.float32)  # (Q, E)

    def warm(self) -> None:
        """Load what searches read (exact segments' float32 copies) now rather than in the first
        request; after this, concurrent searches only read shared state."""
        for segment in self.segments:
            for index in (segment.images, segment.captions):
                if index is not None and not index.approximate:
                    index.dense_vectors()

    def describe(self) -> dict:
        m = self.manifest
        removed = sum(int((~a).sum()) for a in self._alive)
        return {"path": str(self.root), "items": len(self), "removed": removed,
                "segments": [{"name": s.name, "items": len(s.items), "approximate": s.images.approximate}
                             for s in self.segments],
                "num_queries": self.num_queries, "embed_dim": self.embed_dim, "captions": self.has_captions,
                "model": m["model"], "ann": m["ann"], "revision": self.revision, "created": m["created"],
                "updated": m["updated"]}

    # ---- changes --------------------------------------------------------------------------------

    def add(self, items: Sequence[CatalogItem], image_vectors: np.ndarray, caption_vectors: np.ndarray | None,
            *, replace: bool = False, approximate: bool | None = None, progress: ProgressFn | None = None) -> None:
        """Add items as a new segment. image_vectors (n, Q, E), caption_vectors (n, E) or None.
        With `replace`, items already present are replaced (their old rows removed in the same manifest
        write); without it they are an error. `approximate` None = by size (AnnConfig.exact_below).
        Holds the writer lock (see `writer`)."""
        with self.writer():
            self._add(items, image_vectors, caption_vectors, replace, approximate, progress)

    def _add(self, items: Sequence[CatalogItem], image_vectors: np.ndarray, caption_vectors: np.ndarray | None,
             replace: bool, approximate: bool | None, progress: ProgressFn | None) -> None:
        n = len(items)
        if n == 0:
            raise DataError("no items to add")
        q, e = self.num_queries, self.embed_dim
        if image_vectors.shape != (n, q, e):
            raise DataError(f"image vectors have shape {image_vectors.shape}, expected ({n}, {q}, {e})")
        if caption_vectors is not None and caption_vectors.shape != (n, e):
            raise DataError(f"caption vectors have shape {caption_vectors.shape}, expected ({n}, {e})")
        if self.segments and (caption_vectors is not None) != self.has_captions:
            raise DataError("every segment must have gallery captions or none must: this index "
                            + ("has them" if self.has_captions else "has none"))
        ids = [it.item_id for it in items]
        if len(set(ids)) != n:
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"item id {dup!r} appears twice in the items to add")
        present = [i for i in ids if i in self]
        if present and not replace:
            raise DataError(f"item {present[0]!r} is already in the index ({len(present)} of {n} are); "
                            "remove them first or add with replace")
        entry = self._write_segment(items, image_vectors, caption_vectors, approximate, progress)
        for item_id in present:
            self._mark_removed(item_id)
        self._append_segment(entry, items)
        self._write_manifest()

    def _append_segment(self, entry: dict, items: Sequence[CatalogItem]) -> None:
        self.manifest["segments"].append(entry)
        self.segments.append(self._read_segment(self.root, entry, self.num_queries, self.embed_dim,
                                                self.ann_config, verify=False))
        s = len(self.segments) - 1
        for r, it in enumerate(items):
            self._where[it.item_id] = (s, r)
        self._alive.append(np.ones(len(items), dtype=bool))

    def _write_segment(self, items: Sequence[CatalogItem], image_vectors: np.ndarray,
                       caption_vectors: np.ndarray | None, approximate: bool | None,
                       progress: ProgressFn | None) -> dict:
        """Write a segment folder (temporary name, renamed when complete); return its manifest entry."""
        config = self.ann_config
        if approximate is None:
            approximate = len(items) >= config.exact_below
        segments_dir = self.root / "segments"
        segments_dir.mkdir(parents=True, exist_ok=True)
        self._clean_orphans()
        taken = [int(p.name.split("-")[1]) for p in segments_dir.iterdir() if p.name.startswith("seg-")]
        name = f"seg-{1 + max(taken, default=0):06d}"
        tmp = temporary_sibling(segments_dir / name)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            lines = "".join(json.dumps(asdict(it), ensure_ascii=False) + "\n" for it in items)
            (tmp / "items.jsonl").write_text(lines, encoding="utf-8")
            _save_float16(tmp / "image_vectors.npy", image_vectors)
            if caption_vectors is not None:
                _save_float16(tmp / "caption_vectors.npy", caption_vectors, one_per_item=True)
            if approximate:
                if progress:
                    progress("train IVF-PQ", 0, 1)
                images = np.load(tmp / "image_vectors.npy", mmap_mode="r", allow_pickle=False)
                faiss.write_index(MultiVectorIndex.build_ann(images, config), str(tmp / "image_ann.faiss"))
                if caption_vectors is not None:
                    caps = np.load(tmp / "caption_vectors.npy", mmap_mode="r", allow_pickle=False)
                    faiss.write_index(MultiVectorIndex.build_ann(caps, config), str(tmp / "caption_ann.faiss"))
                if progress:
                    progress("train IVF-PQ", 1, 1)
            files = file_entries(tmp)
            fsync_dir(tmp)
            os.replace(tmp, segments_dir / name)
            fsync_dir(segments_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return {"name": name, "count": len(items), "approximate": bool(approximate), "files": files, "removed": []}

    def remove(self, item_ids: Sequence[str]) -> None:
        """Mark items removed (the manifest lists them; `compact` drops their vectors). Holds the writer lock."""
        with self.writer():
            missing = [i for i in item_ids if i not in self]
            if missing:
                raise DataError(f"no item {missing[0]!r} in the index ({len(missing)} of {len(item_ids)} not found)")
            for item_id in item_ids:
                self._mark_removed(item_id)
            self._write_manifest()

    def _mark_removed(self, item_id: str) -> None:
        s, r = self._where.pop(item_id)
        self._alive[s][r] = False
        self.manifest["segments"][s]["removed"].append(r)

    def compact(self, progress: ProgressFn | None = None) -> None:
        """Rewrite the live items as one segment (drops removed items, rebuilds the ANN by size). Holds
        the writer lock."""
        with self.writer():
            self._compact(progress)

    def _compact(self, progress: ProgressFn | None) -> None:
        keep = [(s, np.flatnonzero(a)) for s, a in enumerate(self._alive)]
        items = [self.segments[s].items[r] for s, rows in keep for r in rows]
        if not items:
            raise DataError(f"{self.root}: no items left to compact")
        images = _Rows([(self.segments[s].images.vectors, rows) for s, rows in keep])  # (n, Q, E), streamed
        captions = (_Rows([(self.segments[s].captions.vectors, rows) for s, rows in keep])
                    if self.has_captions else None)  # (n, 1, E)
        entry = self._write_segment(items, images, captions, None, progress)
        old = [s.name for s in self.segments]
        self.manifest["segments"], self.segments, self._alive, self._where = [], [], [], {}
        self._append_segment(entry, items)
        self._write_manifest()  # the switch: until here the old segments are the index
        for name in old:
            shutil.rmtree(self.root / "segments" / name, ignore_errors=True)

    @contextmanager
    def writer(self, wait_seconds: float = 0.0) -> Iterator["CatalogIndex"]:
        """Hold the index folder's writer lock for a `with` block (a command holds it around its whole
        run, embedding included). Another writer holding it: wait up to `wait_seconds`, then DataError
        with one line naming its pid. Once held, DataError when another writer changed the index since
        this object read it (nothing is written). Re-entrant: `add`, `remove` and `compact` take it
        themselves and nest inside an outer `writer()` without waiting."""
        with WriterLock(self.root, DataError, wait_seconds=wait_seconds):
            self._check_unchanged()
            yield self

    def _check_unchanged(self) -> None:
        on_disk = read_manifest(self.root, DataError, format=FORMAT, version=FORMAT_VERSION)
        # `created` too: a rebuild swapped in since may have counted to the same revision
        if on_disk is None or _identity(on_disk) != _identity(self.manifest):
            raise DataError(f"{self.root}: the index was changed by another writer since it was opened; "
                            "run the command again")

    def _write_manifest(self, *, change: bool = True) -> None:
        for entry in self.manifest["segments"]:
            entry["removed"] = sorted(set(entry["removed"]))
        self.manifest["count"] = len(self)
        self.manifest["updated"] = _now()
        before = self.revision
        if change:
            self.manifest["revision"] = before + 1
        try:
            save_manifest(self.root, self.manifest, sort_keys=False)
        except BaseException:
            self.manifest["revision"] = before  # not written: the disk still has the old revision
            raise

    def _clean_orphans(self) -> None:
        named = {s["name"] for s in self.manifest["segments"]}
        folder = self.root / "segments"
        for child in folder.iterdir() if folder.is_dir() else ():
            if child.is_dir() and child.name not in named:
                shutil.rmtree(child, ignore_errors=True)

    # ---- search ---------------------------------------------------------------------------------

    def _allowed(self, s: int, categories: Sequence[str] | None) -> np.ndarray:
        alive = self._alive[s]
        if not categories:
            return alive
        segment = self.segments[s]
        wanted = [i for i, name in enumerate(segment.category_names) if name in set(categories)]
        return alive & np.isin(segment.category_codes, wanted)

    def search(self, queries: np.ndarray, k: int, *, target: str = "images", reduce: Reduce = Reduce.MAX,
               categories: Sequence[str] | None = None) -> list[list[tuple[CatalogItem, float]]]:
        """Top-k live items for each query (B, P, E), merged over segments: [(item, score), ...] per query.
        target "images" scores the items' query vectors, "captions" their gallery-caption vectors."""
        if target == "captions" and not self.has_captions:
            raise DataError(f"{self.root}: the index has no gallery captions (built with --no-captions)")
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 3 or q.shape[2] != self.embed_dim:
            raise DataError(f"queries must be (batch, vectors, {self.embed_dim}), got shape {q.shape}")
        merged: list[list[tuple[float, int, int]]] = [[] for _ in range(q.shape[0])]
        for s, segment in enumerate(self.segments):
            allowed = self._allowed(s, categories)
            if not allowed.any():
                continue
            index = segment.images if target == "images" else segment.captions
            scores, rows = index.search(q, k, reduce=reduce, allowed=allowed)
            for b in range(q.shape[0]):
                merged[b].extend((float(sc), s, int(r)) for sc, r in zip(scores[b], rows[b]) if r >= 0)
        out = []
        for hits in merged:
            hits.sort(key=lambda h: (-h[0], h[1], h[2]))
            out.append([(self.segments[s].items[r], score) for score, s, r in hits[:k]])
        return out

    def caption_scores(self, queries: np.ndarray, item_ids: Sequence[str]) -> np.ndarray:
        """(B, R) exact scores of queries (B, E) against the gallery captions of `item_ids`."""
        if not self.has_captions:
            raise DataError(f"{self.root}: the index has no gallery captions (built with --no-captions)")
        q = np.asarray(queries, dtype=np.float32)  # (B, E)
        vecs = np.stack([np.asarray(self.segments[self._where[i][0]].captions.vectors[self._where[i][1], 0],
                                    dtype=np.float32) for i in item_ids]) if item_ids else np.zeros((0, q.shape[1]))
        return q @ vecs.T  # (B, R)


def _identity(manifest: dict) -> tuple:
    """What tells one state of an index folder from another: its creation time and revision."""
    return manifest.get("created"), int(manifest.get("revision", 0))


def _save_float16(path: Path, array, block: int = 65536, one_per_item: bool = False) -> None:
    """np.save of `array` (N, ...) as float16, written in blocks: the source may be a memmap or a
    _Rows view larger than memory. `one_per_item` stores (N, E) as (N, 1, E)."""
    widen = one_per_item and len(array.shape) == 2  # (N, E) -> (N, 1, E); (N, 1, E) is kept
    shape = (array.shape[0], 1, array.shape[1]) if widen else tuple(array.shape)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    for start in range(0, array.shape[0], block):
        chunk = np.asarray(array[start:start + block], dtype=np.float16)
        out[start:start + block] = chunk[:, None, :] if widen else chunk
    out.flush()
    del out


class _Rows:
    """Chosen rows of several arrays, read as one (N, ...) array block by block (compaction streams
    the live vectors of every segment into the new one without holding them all in memory)."""

    def __init__(self, parts: Sequence[tuple[np.ndarray, np.ndarray]]):
        self.parts = [(array, np.asarray(rows, dtype=np.int64)) for array, rows in parts if len(rows)]
        self.offsets = np.cumsum([0] + [len(rows) for _, rows in self.parts])
        self.shape = (int(self.offsets[-1]), *self.parts[0][0].shape[1:])

    def __getitem__(self, window: slice) -> np.ndarray:
        start, stop, _ = window.indices(self.shape[0])
        blocks = []
        for (array, rows), lo in zip(self.parts, self.offsets[:-1]):
            a, b = max(start - lo, 0), min(stop - lo, len(rows))
            if a < b:
                blocks.append(np.asarray(array[rows[a:b]]))
        return np.concatenate(blocks) if blocks else np.zeros((0, *self.shape[1:]), np.float16)
