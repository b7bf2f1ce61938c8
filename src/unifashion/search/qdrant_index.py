"""The catalog index on Qdrant: the same searches, scores and changes as `CatalogIndex`, the vectors
in a Qdrant collection (search/qdrant_collection.py) and, in the index folder, only a manifest that
names the backend, where the collection is and the model that built it:

    manifest.json   format, "backend": "qdrant", "qdrant": {url | path | edge, collection}, model
                    fingerprint, dimensions, captions, search settings

Scores are the model's own, as Qdrant computes them: MAX_SIM over an item's query vectors is, for a
one-vector query (text, composed), the best query vector (BLIP-2's score); for an image's 32 vectors
it is the sum of each vector's best match, 32x our image -> image mean (divided back here). Image ->
text is the best of the photo's vectors against the caption vector: one nearest-caption search per
query vector, merged by item (exact: an item whose best vector ranks it in the top k of the merged
list is in that vector's own top k).

First stage: below `exact_below` items every item is scored (MaxSim over all of them); at or above
it an HNSW graph over each item's pooled vector (the mean of its query vectors) proposes
`candidates` items, which MaxSim re-scores exactly (benchmarks/search_backends.py measures recall).
A graph over one vector per item builds in practical time at a million items; one over 32M query
vectors, or over multivectors, does not (Qdrant's own guidance).

Items are points with ids made from the item ids, so an interrupted build, run again, upserts the
same points again: no duplicates. The collection's metadata records the model's fingerprint and
whether the build finished (an edge shard keeps it in a file beside the shard).
"""
from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from unifashion.errors import DataError
from unifashion.search.catalog_index import FORMAT, FORMAT_VERSION, CatalogItem, ProgressFn
from unifashion.search.qdrant_collection import (CAPTION, HnswSettings, QdrantClientCollection,
                                                 QdrantEdgeCollection)
from unifashion.search.vector_index import Reduce
from unifashion.storage import MANIFEST, save_manifest

BACKEND = "qdrant"
API_KEY_ENV = "QDRANT_API_KEY"  # read from the environment, never written into a manifest
UPSERT_BATCH = 256  # points per upsert request
_META_KEY = "unifashion"


@dataclass(frozen=True)
class QdrantLocation:
    """Where the collection is: exactly one of a server/cluster URL, a qdrant-client local storage
    folder, or a qdrant-edge shard folder."""
    url: str | None = None
    path: str | None = None
    edge: str | None = None
    collection: str = "unifashion"  # the collection's name (an edge shard holds one collection)

    def __post_init__(self) -> None:
        given = [n for n in ("url", "path", "edge") if getattr(self, n)]
        if len(given) != 1:
            raise DataError("a Qdrant index needs exactly one of a server URL (--qdrant-url), a local storage "
                            f"folder (--qdrant-path) or an edge shard folder (--qdrant-edge); got {given or 'none'}")
        if not self.collection.strip():
            raise DataError("the Qdrant collection name is empty")

    def describe(self) -> str:
        if self.url:
            return f"collection {self.collection!r} at {self.url}"
        return f"collection {self.collection!r} in {self.path}" if self.path else f"edge shard {self.edge}"

    def to_manifest(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_manifest(cls, entry: dict) -> "QdrantLocation":
        return cls(**{f.name: entry[f.name] for f in fields(cls) if f.name in entry})

    def connect(self, *, create: bool = False):
        if self.edge:
            return QdrantEdgeCollection.open(Path(self.edge), create=create)
        return QdrantClientCollection.connect(url=self.url, path=self.path, name=self.collection,
                                              api_key=os.environ.get(API_KEY_ENV) or None)


@dataclass(frozen=True)
class QdrantSettings:
    exact_below: int = 20_000  # items: every item scored below this size, HNSW candidates at or above it
    candidates: int = 0  # items the first stage proposes per query (at least k); 0 = max(1000, items / 100)
    hnsw_ef: int = 0  # graph search breadth; 0 = the candidates wanted
    hnsw: HnswSettings = HnswSettings()

    def candidates_for(self, items: int, k: int) -> int:
        return max(k, self.candidates or max(1000, items // 100))

    @classmethod
    def from_manifest(cls, entry: dict) -> "QdrantSettings":
        return cls(**{**entry, "hnsw": HnswSettings(**entry.get("hnsw", {}))})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _item(payload: dict) -> CatalogItem:
    return CatalogItem(**{f.name: payload[f.name] for f in fields(CatalogItem) if f.name in payload})


class QdrantIndex:
    """A catalog index whose items and vectors live in a Qdrant collection (the API of `CatalogIndex`)."""

    def __init__(self, root: Path, manifest: dict, collection):
        self.root = Path(root)
        self.manifest = manifest
        self.collection = collection
        self.location = QdrantLocation.from_manifest(manifest["qdrant"])
        self.settings = QdrantSettings.from_manifest(manifest["search"])

    # ---- creation and loading -------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, location: QdrantLocation, *, fingerprint: str, model_source: str, num_queries: int,
              embed_dim: int, captions: bool, settings: QdrantSettings = QdrantSettings(),
              overwrite: bool = False) -> "QdrantIndex":
        """The collection to build into: created empty, or the one an interrupted build of the same model
        left (its points are kept; the build upserts them again). A finished index there, or one of
        another model, is refused unless `overwrite` (then it is deleted)."""
        root = Path(root)
        if (root / MANIFEST).exists() and not overwrite:
            raise DataError(f"{root}: an index already exists (use --overwrite to replace it, or `index add`)")
        collection = location.connect(create=True)
        meta = collection.metadata().get(_META_KEY) if collection.exists() else None
        resumable = (meta is not None and meta.get("fingerprint") == fingerprint and not meta.get("complete")
                     and meta.get("captions") == captions)
        if collection.exists() and not resumable:
            if not overwrite:
                what = ("an index of another model" if meta and meta.get("fingerprint") != fingerprint
                        else "a finished index" if meta else "data that is not a UniFashion index")
                raise DataError(f"{location.describe()} already holds {what}; use --overwrite to replace it "
                                "or another --qdrant-collection")
            collection.delete_collection()
            collection = location.connect(create=True)
        record = {"fingerprint": fingerprint, "captions": captions, "complete": False}
        if not collection.exists():
            collection.create(embed_dim, settings.hnsw, {_META_KEY: record})
        collection.set_metadata({_META_KEY: record})
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "backend": BACKEND,
                    "qdrant": location.to_manifest(), "model": {"fingerprint": fingerprint, "source": model_source},
                    "num_queries": num_queries, "embed_dim": embed_dim, "dtype": "float32", "captions": captions,
                    "search": asdict(settings), "count": 0, "created": _now(), "updated": _now()}
        return cls(root, manifest, collection)

    def finish(self) -> None:
        """Mark the build complete (collection metadata) and write the folder's manifest: the index exists."""
        self.collection.set_metadata({_META_KEY: {"fingerprint": self.fingerprint, "captions": self.has_captions,
                                                  "complete": True}})
        self._write_manifest()

    @classmethod
    def open(cls, root: Path, manifest: dict) -> "QdrantIndex":
        """The index a folder's manifest names; DataError with one line when the collection is missing,
        unfinished or was built by another model."""
        root = Path(root)
        try:
            location = QdrantLocation.from_manifest(manifest["qdrant"])
            QdrantSettings.from_manifest(manifest["search"])
            fingerprint = manifest["model"]["fingerprint"]
            int(manifest["num_queries"]), int(manifest["embed_dim"]), bool(manifest["captions"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{root / MANIFEST}: malformed manifest ({err})") from None
        collection = location.connect()
        if not collection.exists():
            raise DataError(f"{root}: {location.describe()} does not exist (deleted, or another server); "
                            "rebuild the index")
        meta = collection.metadata().get(_META_KEY)
        if isinstance(collection, QdrantClientCollection) and meta is None:
            raise DataError(f"{root}: {location.describe()} is not a UniFashion index")
        if meta is not None and meta.get("fingerprint") != fingerprint:
            raise DataError(f"{root}: {location.describe()} was built by another model (fingerprint "
                            f"{str(meta.get('fingerprint'))[:12]}, this index's {fingerprint[:12]}); rebuild the index")
        if meta is not None and not meta.get("complete"):
            raise DataError(f"{root}: the build into {location.describe()} did not finish; run `index build` again "
                            "to resume it")
        return cls(root, manifest, collection)

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
    def has_captions(self) -> bool:
        return bool(self.manifest["captions"])

    def __len__(self) -> int:
        return self.collection.count()

    def __contains__(self, item_id: str) -> bool:
        return bool(self.collection.retrieve([item_id]))

    def item(self, item_id: str) -> CatalogItem:
        found = self.collection.retrieve([item_id])
        if not found:
            raise DataError(f"no item {item_id!r} in the index")
        return _item(found[0][0])

    def items(self) -> Iterable[CatalogItem]:
        return (_item(p) for p in self.collection.payloads())

    def categories(self) -> list[str]:
        return sorted(c for c in self.collection.categories() if c)

    def warm(self) -> None:
        """Nothing to load: the engine holds the collection (kept for the service's start-up)."""

    def describe(self) -> dict:
        m = self.manifest
        return {"path": str(self.root), "backend": BACKEND, "qdrant": m["qdrant"], "items": len(self), "removed": 0,
                "segments": [], "num_queries": self.num_queries, "embed_dim": self.embed_dim,
                "captions": self.has_captions, "model": m["model"], "search": m["search"],
                "created": m["created"], "updated": m["updated"]}

    # ---- changes --------------------------------------------------------------------------------

    def add(self, items: Sequence[CatalogItem], image_vectors: np.ndarray, caption_vectors: np.ndarray | None,
            *, replace: bool = False, progress: ProgressFn | None = None, **_ignored) -> None:
        """Upsert items: image_vectors (n, Q, E), caption_vectors (n, E) or None (as `CatalogIndex.add`)."""
        n = len(items)
        if n == 0:
            raise DataError("no items to add")
        q, e = self.num_queries, self.embed_dim
        if image_vectors.shape != (n, q, e):
            raise DataError(f"image vectors have shape {image_vectors.shape}, expected ({n}, {q}, {e})")
        if (caption_vectors is not None) != self.has_captions:
            raise DataError("every item must have a gallery caption or none must: this index "
                            + ("has them" if self.has_captions else "has none"))
        if caption_vectors is not None and caption_vectors.shape != (n, e):
            raise DataError(f"caption vectors have shape {caption_vectors.shape}, expected ({n}, {e})")
        ids = [it.item_id for it in items]
        if len(set(ids)) != n:
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"item id {dup!r} appears twice in the items to add")
        if not replace and self.manifest.get("count", 0):
            present = self.present(ids)
            if present:
                raise DataError(f"item {present[0]!r} is already in the index ({len(present)} of {n} are); "
                                "remove them first or add with replace")
        self.upsert(items, image_vectors, caption_vectors, progress)
        self._write_manifest()

    def present(self, item_ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(item_ids), 1024):
            found += [p["item_id"] for p, _ in self.collection.retrieve(item_ids[start:start + 1024])]
        return found

    def upsert(self, items: Sequence[CatalogItem], image_vectors: np.ndarray, caption_vectors: np.ndarray | None,
               progress: ProgressFn | None = None) -> None:
        """Write the points in batches (numpy views of memory-mapped vectors are read batch by batch)."""
        n = len(items)
        for start in range(0, n, UPSERT_BATCH):
            stop = min(n, start + UPSERT_BATCH)
            self.collection.upsert([asdict(it) for it in items[start:stop]],
                                   np.asarray(image_vectors[start:stop], dtype=np.float32),  # (b, Q, E)
                                   None if caption_vectors is None
                                   else np.asarray(caption_vectors[start:stop], dtype=np.float32))  # (b, E)
            if progress:
                progress("upsert to Qdrant", stop, n)
        if hasattr(self.collection, "flush"):
            self.collection.flush()

    def remove(self, item_ids: Sequence[str]) -> None:
        missing = sorted(set(item_ids) - set(self.present(list(item_ids))))
        if missing:
            raise DataError(f"no item {missing[0]!r} in the index ({len(missing)} of {len(item_ids)} not found)")
        self.collection.delete(item_ids)
        if hasattr(self.collection, "flush"):
            self.collection.flush()
        self._write_manifest()

    def compact(self, progress: ProgressFn | None = None) -> None:
        """Qdrant drops deleted points itself (its optimizer); an edge shard is optimised now."""
        if hasattr(self.collection, "shard"):
            self.collection.shard.optimize()
        self._write_manifest()

    def _write_manifest(self) -> None:
        """The folder's manifest, rewritten on every change: a service sharing the folder notices it."""
        self.manifest["count"] = len(self)
        self.manifest["updated"] = _now()
        save_manifest(self.root, self.manifest, sort_keys=False)

    # ---- search ---------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, target: str = "images", reduce: Reduce = Reduce.MAX,
               categories: Sequence[str] | None = None) -> list[list[tuple[CatalogItem, float]]]:
        """Top-k items for each query (B, P, E), as `CatalogIndex.search`."""
        if target == "captions" and not self.has_captions:
            raise DataError(f"{self.root}: the index has no gallery captions (built with --no-captions)")
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 3 or q.shape[2] != self.embed_dim:
            raise DataError(f"queries must be (batch, vectors, {self.embed_dim}), got shape {q.shape}")
        count = int(self.manifest.get("count") or len(self))
        exact = count < self.settings.exact_below
        want = self.settings.candidates_for(count, k)
        ef = self.settings.hnsw_ef or want
        out = []
        for query in q:  # (P, E)
            if target == "captions":
                out.append(self._best_captions(query, k, categories, exact, ef))
                continue
            if reduce is Reduce.MAX and query.shape[0] > 1:
                raise DataError("Qdrant's MAX_SIM sums over a query's vectors: a several-vector query scores "
                                "by their mean (Reduce.MEAN), not their best")
            hits = self.collection.maxsim(query, k, categories, None if exact else want, ef)
            scale = 1.0 / query.shape[0]  # MaxSim sums each query vector's best match: the mean is 1/P of it
            out.append([(_item(h.payload), h.score * scale) for h in hits])
        return out

    def _best_captions(self, query: np.ndarray, k: int, categories, exact: bool, ef: int):
        best: dict[str, tuple[float, dict]] = {}
        for hits in self.collection.nearest_captions(query, k, categories, exact, ef):
            for h in hits:
                item_id = h.payload["item_id"]
                if item_id not in best or h.score > best[item_id][0]:
                    best[item_id] = (h.score, h.payload)
        ranked = sorted(best.values(), key=lambda sp: (-sp[0], sp[1]["item_id"]))[:k]
        return [(_item(p), s) for s, p in ranked]

    def caption_scores(self, queries: np.ndarray, item_ids: Sequence[str]) -> np.ndarray:
        """(B, R) exact scores of queries (B, E) against the gallery captions of `item_ids`."""
        if not self.has_captions:
            raise DataError(f"{self.root}: the index has no gallery captions (built with --no-captions)")
        q = np.asarray(queries, dtype=np.float32)  # (B, E)
        found = self.collection.retrieve(list(item_ids), [CAPTION])
        if len(found) != len(item_ids):
            raise DataError(f"{self.root}: {len(item_ids) - len(found)} of the items to re-rank are no longer in "
                            "the collection")
        vecs = np.array([v[CAPTION] for _, v in found], dtype=np.float32).reshape(len(found), q.shape[1])  # (R, E)
        return q @ vecs.T  # (B, R)


def build_qdrant_index(model, items: Sequence[CatalogItem], out: Path, location: QdrantLocation, *,
                       model_source: str, captions: bool = True, settings: QdrantSettings = QdrantSettings(),
                       overwrite: bool = False, restart: bool = False, batch_size: int = 32,
                       max_new_tokens: int | None = None, progress: ProgressFn | None = None, skip_bad: bool = False,
                       skipped: list[dict] | None = None) -> QdrantIndex | None:
    """A new index at `out` whose vectors go to `location`. Stages: 1. the catalog embedded chunk by
    chunk under out/.build (resumable, split across processes under `accelerate launch`, as for the
    built-in index)  2. the collection created (or an interrupted build's taken up)  3. the points
    upserted  4. the build marked complete and the folder's manifest written. Returns None in the
    processes of a multi-process launch other than the main one (it alone writes)."""
    import shutil

    from unifashion.processes import process_state

    from unifashion.search.catalog_index import model_fingerprint
    from unifashion.search.index_build import BUILD_DIR, check_unique_ids, embed_items

    out = Path(out)
    if not items:
        raise DataError("no items to index")
    if (out / MANIFEST).exists() and not overwrite:
        raise DataError(f"{out}: an index already exists (use --overwrite to replace it, or `index add`)")
    check_unique_ids(items)
    fingerprint = model_fingerprint(model)
    state = process_state()
    if state.is_main_process:  # before the long embedding: an unreachable server or a foreign collection fails now
        location.connect(create=True)
    work = out / BUILD_DIR
    if restart and work.exists() and state.is_main_process:
        shutil.rmtree(work)
    state.wait_for_everyone()
    embedded = embed_items(model, items, work, captions=captions, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, progress=progress, skip_bad=skip_bad, skipped=skipped)
    if embedded is None:  # another process of a multi-process launch: the main one writes
        return None
    items, vectors, caption_vectors = embedded
    index = QdrantIndex.start(out, location, fingerprint=fingerprint, model_source=model_source,
                              num_queries=vectors.shape[1], embed_dim=vectors.shape[2], captions=captions,
                              settings=settings, overwrite=overwrite)
    index.upsert(items, vectors, caption_vectors, progress)
    index.finish()
    shutil.rmtree(out / "segments", ignore_errors=True)  # a built-in index replaced by --overwrite
    shutil.rmtree(work, ignore_errors=True)
    return index
