"""One Qdrant collection as the catalog index uses it, reached three ways with the same calls:

  QdrantClientCollection   qdrant-client: a server or cluster (`url`), or its local mode (`path`:
                           in-process, exact scans in numpy, one process at a time; for tests and small
                           catalogs)
  QdrantEdgeCollection     qdrant-edge: Qdrant's Rust engine in-process (HNSW, payload index, MaxSim)
                           over a shard folder; one process at a time

The points: one per item, its id a UUID made from the item id (so that upserting an item twice, as a
resumed build does, overwrites it), three named vectors and the item as payload:
  queries   (Q, E) multivector, dot product, MAX_SIM, no HNSW graph: the exact scorer
  pooled    (E,)  the mean of the item's query vectors, with an HNSW graph: the first stage's candidates
  caption   (E,)  the gallery caption's embedding, with an HNSW graph (image -> text)
and a keyword payload index on `category`. Numpy in, plain Python lists to the engines.
"""
from __future__ import annotations

import atexit
import json
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unifashion.errors import DataError
from unifashion.storage import write_text_atomic

QUERIES, POOLED, CAPTION = "queries", "pooled", "caption"
CATEGORY = "category"
_ID_NAMESPACE = uuid.UUID("5f1c3a52-8d0e-4c55-9a8f-2b6f1e7d4c11")  # fixed: the same item, the same point
MAX_CATEGORIES = 100_000  # facet limit when listing a catalog's categories


def point_id(item_id: str) -> uuid.UUID:
    return uuid.uuid5(_ID_NAMESPACE, item_id)


@dataclass(frozen=True)
class HnswSettings:
    m: int = 16  # graph edges per node of the pooled and caption vectors
    ef_construct: int = 128
    full_scan_threshold_kb: int = 10_000  # below this many KB of vectors a segment is scanned, not walked
    float16: bool = False  # store the query vectors as float16: half the memory, but the engine then
    # scores in float16 too (scores off by ~1e-3 of their size, measured) where float32 matches exactly


@dataclass(frozen=True)
class Hit:
    payload: dict
    score: float


def _rounded(vectors: np.ndarray) -> np.ndarray:
    """float16-rounded float32: the built-in index stores float16, so both score the same numbers."""
    return np.asarray(vectors, dtype=np.float16).astype(np.float32)


class QdrantClientCollection:
    """A collection behind qdrant-client (`url` server/cluster or `path` local mode)."""

    def __init__(self, client, name: str, where: str):
        from qdrant_client import models

        self.client, self.name, self.where, self.m = client, name, where, models

    @classmethod
    def connect(cls, *, url: str | None, path: str | None, name: str, api_key: str | None = None,
                timeout: int = 30) -> "QdrantClientCollection":
        """DataError with one line when qdrant-client is missing, the server does not answer or local
        storage is held by another process."""
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            raise DataError("the Qdrant backend needs qdrant-client (pip install 'qdrant-client>=1.20')") from None
        where = f"Qdrant at {url}" if url else f"Qdrant local storage {path}"
        try:
            client = (QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False) if url
                      else _local_client(str(Path(path).resolve())))
            client.get_collections()  # a server that does not answer fails here, not in the first search
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - connection, TLS, auth, lock: the client raises many kinds
            raise DataError(f"{where}: cannot connect ({_first_line(e)})") from None
        return cls(client, name, where)

    # ---- the collection ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.name))

    def metadata(self) -> dict:
        return dict(self.client.get_collection(self.name).config.metadata or {})

    def set_metadata(self, metadata: dict) -> None:
        self.client.update_collection(self.name, metadata=metadata)

    def create(self, embed_dim: int, hnsw: HnswSettings, metadata: dict) -> None:
        m = self.m
        graph = m.HnswConfigDiff(m=hnsw.m, ef_construct=hnsw.ef_construct,
                                 full_scan_threshold=hnsw.full_scan_threshold_kb)
        self.client.create_collection(self.name, vectors_config={
            QUERIES: m.VectorParams(size=embed_dim, distance=m.Distance.DOT,
                                    datatype=m.Datatype.FLOAT16 if hnsw.float16 else m.Datatype.FLOAT32,
                                    multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
                                    hnsw_config=m.HnswConfigDiff(m=0)),  # scored only, never walked
            POOLED: m.VectorParams(size=embed_dim, distance=m.Distance.DOT, hnsw_config=graph),
            CAPTION: m.VectorParams(size=embed_dim, distance=m.Distance.DOT, hnsw_config=graph),
        }, metadata=metadata)
        with warnings.catch_warnings():  # local mode says payload indexes do nothing there; a server uses it
            warnings.simplefilter("ignore")
            self.client.create_payload_index(self.name, CATEGORY, m.PayloadSchemaType.KEYWORD)

    def delete_collection(self) -> None:
        self.client.delete_collection(self.name)

    # ---- points -----------------------------------------------------------------------------------

    def upsert(self, payloads: Sequence[dict], queries: np.ndarray, captions: np.ndarray | None) -> None:
        """queries (n, Q, E), captions (n, E) or None."""
        q = _rounded(queries)  # (n, Q, E)
        vectors = {QUERIES: q.tolist(), POOLED: q.mean(axis=1).tolist()}  # pooled (n, E)
        if captions is not None:
            vectors[CAPTION] = _rounded(captions).tolist()
        self.client.upsert(self.name, points=self.m.Batch(
            ids=[str(point_id(p["item_id"])) for p in payloads], vectors=vectors, payloads=list(payloads)))

    def delete(self, item_ids: Sequence[str]) -> None:
        self.client.delete(self.name, points_selector=self.m.PointIdsList(points=[str(point_id(i)) for i in item_ids]))

    def retrieve(self, item_ids: Sequence[str], vectors: Sequence[str] = ()) -> list[tuple[dict, dict]]:
        """(payload, {name: vector}) of the items found, in the order asked."""
        records = self.client.retrieve(self.name, [str(point_id(i)) for i in item_ids], with_payload=True,
                                       with_vectors=list(vectors) or False)
        by_id = {r.payload["item_id"]: (r.payload, r.vector or {}) for r in records}
        return [by_id[i] for i in item_ids if i in by_id]

    def count(self) -> int:
        return int(self.client.count(self.name, exact=True).count)

    def categories(self) -> list[str]:
        hits = self.client.facet(self.name, CATEGORY, limit=MAX_CATEGORIES, exact=True).hits
        return [str(h.value) for h in hits]

    def payloads(self, batch: int = 1024):
        offset = None
        while True:
            records, offset = self.client.scroll(self.name, limit=batch, offset=offset, with_payload=True)
            yield from (r.payload for r in records)
            if offset is None:
                return

    # ---- queries ----------------------------------------------------------------------------------

    def _filter(self, categories: Sequence[str] | None):
        if not categories:
            return None
        m = self.m
        return m.Filter(must=[m.FieldCondition(key=CATEGORY, match=m.MatchAny(any=list(categories)))])

    def maxsim(self, query: np.ndarray, limit: int, categories: Sequence[str] | None,
               prefetch: int | None, ef: int) -> list[Hit]:
        """Items by MaxSim of query (P, E) against their query vectors; with `prefetch`, only the
        `prefetch` best by the pooled vector (HNSW, query = mean of the P vectors) are scored."""
        m = self.m
        f = self._filter(categories)
        stage = None
        if prefetch is not None:
            stage = m.Prefetch(query=query.mean(axis=0).tolist(), using=POOLED, limit=prefetch, filter=f,
                               params=m.SearchParams(hnsw_ef=max(ef, prefetch)))
        with warnings.catch_warnings():  # local mode: "search_params has no effect" (it is always exact)
            warnings.simplefilter("ignore")
            points = self.client.query_points(self.name, query=query.tolist(), using=QUERIES, prefetch=stage,
                                              query_filter=f, limit=limit, with_payload=True).points
        return [Hit(p.payload, float(p.score)) for p in points]

    def nearest_captions(self, queries: np.ndarray, limit: int, categories: Sequence[str] | None,
                         exact: bool, ef: int) -> list[list[Hit]]:
        """Per query vector (P, E), the items of the nearest gallery-caption vectors."""
        m = self.m
        f = self._filter(categories)
        params = m.SearchParams(exact=exact, hnsw_ef=max(ef, limit))
        with warnings.catch_warnings():  # local mode: "search_params has no effect" (it is always exact)
            warnings.simplefilter("ignore")
            answers = self.client.query_batch_points(self.name, [
                m.QueryRequest(query=v.tolist(), using=CAPTION, filter=f, limit=limit, with_payload=True,
                               params=params) for v in queries])
        return [[Hit(p.payload, float(p.score)) for p in a.points] for a in answers]

    def close(self) -> None:
        """Local storage stays open for the process (see `_local_client`); a server connection closes."""
        if not getattr(self.client, "_unifashion_shared", False):
            self.client.close()


_LOCAL_CLIENTS: dict[str, object] = {}


def _local_client(path: str):
    """One local-mode client per storage folder per process: local mode locks its folder, so a second
    client in the same process (a service reopening a changed index) would be refused."""
    from qdrant_client import QdrantClient

    if path not in _LOCAL_CLIENTS:
        try:
            client = QdrantClient(path=path)
        except RuntimeError as e:  # "Storage folder ... is already accessed by another instance"
            raise DataError(f"Qdrant local storage {path}: held by another process ({_first_line(e)}); local mode "
                            "serves one process at a time — use a Qdrant server (--qdrant-url) to share it") from None
        client._unifashion_shared = True
        if not _LOCAL_CLIENTS:
            atexit.register(_close_local_clients)
        _LOCAL_CLIENTS[path] = client
    return _LOCAL_CLIENTS[path]


def _close_local_clients() -> None:
    """Closed before the interpreter shuts down (the client's own __del__ then fails noisily)."""
    for client in _LOCAL_CLIENTS.values():
        client.close()
    _LOCAL_CLIENTS.clear()


class QdrantEdgeCollection:
    """A qdrant-edge shard folder (the engine runs in this process)."""

    def __init__(self, shard, path: Path):
        import qdrant_edge

        self.shard, self.path, self.e = shard, path, qdrant_edge
        self.where = f"Qdrant edge shard {path}"

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> "QdrantEdgeCollection":
        """The shard at `path`, shared by everything in this process that opens it (the engine locks its
        write-ahead log: a second handle, as a service reopening a changed index would take, is refused).
        With `create`, a missing shard is not an error: `create` makes it."""
        try:
            import qdrant_edge
        except ImportError:
            raise DataError("the Qdrant edge backend needs qdrant-edge-py (pip install 'qdrant-edge-py>=0.9')") from None
        path = Path(path).resolve()
        if str(path) in _EDGE_SHARDS:
            return cls(_EDGE_SHARDS[str(path)], path)
        if not (path / "wal").is_dir():
            if create:
                return cls(None, path)
            raise DataError(f"Qdrant edge shard {path}: missing")
        try:
            shard = qdrant_edge.EdgeShard.load(str(path))
        except Exception as e:  # noqa: BLE001 - the bindings raise plain exceptions with the engine's message
            raise DataError(f"Qdrant edge shard {path}: cannot open ({_first_line(e)}); an edge shard serves one "
                            "process at a time") from None
        _EDGE_SHARDS[str(path)] = shard
        return cls(shard, path)

    def exists(self) -> bool:
        return self.shard is not None

    @property
    def _metadata_file(self) -> Path:
        # an edge shard has no collection metadata; the engine owns the shard folder, so it lives beside it
        return self.path.with_name(self.path.name + ".unifashion.json")

    def metadata(self) -> dict:
        f = self._metadata_file
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

    def set_metadata(self, metadata: dict) -> None:
        write_text_atomic(self._metadata_file, json.dumps(metadata, indent=1) + "\n")

    def create(self, embed_dim: int, hnsw: HnswSettings, metadata: dict) -> None:
        e = self.e
        graph = e.HnswIndexConfig(m=hnsw.m, ef_construct=hnsw.ef_construct,
                                  full_scan_threshold=hnsw.full_scan_threshold_kb)
        config = e.EdgeConfig(vectors={
            QUERIES: e.EdgeVectorParams(size=embed_dim, distance=e.Distance.Dot,
                                        datatype=(e.VectorStorageDatatype.Float16 if hnsw.float16
                                                  else e.VectorStorageDatatype.Float32),
                                        multivector_config=e.MultiVectorConfig(e.MultiVectorComparator.MaxSim),
                                        hnsw_config=e.HnswIndexConfig(m=0, ef_construct=hnsw.ef_construct,
                                                                      full_scan_threshold=hnsw.full_scan_threshold_kb)),
            POOLED: e.EdgeVectorParams(size=embed_dim, distance=e.Distance.Dot, hnsw_config=graph),
            CAPTION: e.EdgeVectorParams(size=embed_dim, distance=e.Distance.Dot, hnsw_config=graph),
        })
        self.path.mkdir(parents=True, exist_ok=True)
        self.shard = _EDGE_SHARDS[str(self.path)] = e.EdgeShard.create(str(self.path), config)
        self.shard.update(e.UpdateOperation.create_field_index(CATEGORY, e.PayloadSchemaType.Keyword))

    def delete_collection(self) -> None:
        import shutil

        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._metadata_file.unlink(missing_ok=True)

    def upsert(self, payloads: Sequence[dict], queries: np.ndarray, captions: np.ndarray | None) -> None:
        q = _rounded(queries)  # (n, Q, E)
        pooled = q.mean(axis=1)  # (n, E)
        caps = _rounded(captions) if captions is not None else None  # (n, E)
        points = []
        for i, p in enumerate(payloads):
            vector = {QUERIES: q[i].tolist(), POOLED: pooled[i].tolist()}
            if caps is not None:
                vector[CAPTION] = caps[i].tolist()
            points.append(self.e.Point(point_id(p["item_id"]), vector, p))
        self.shard.update(self.e.UpdateOperation.upsert_points(points))

    def delete(self, item_ids: Sequence[str]) -> None:
        self.shard.update(self.e.UpdateOperation.delete_points([point_id(i) for i in item_ids]))

    def retrieve(self, item_ids: Sequence[str], vectors: Sequence[str] = ()) -> list[tuple[dict, dict]]:
        records = self.shard.retrieve([point_id(i) for i in item_ids], with_payload=True,
                                      with_vector=list(vectors) or False)
        by_id = {r.payload["item_id"]: (r.payload, r.vector or {}) for r in records}
        return [by_id[i] for i in item_ids if i in by_id]

    def count(self) -> int:
        return int(self.shard.count(self.e.CountRequest(exact=True)))

    def categories(self) -> list[str]:
        response = self.shard.facet(self.e.FacetRequest(key=CATEGORY, limit=MAX_CATEGORIES, exact=True))
        return [str(h.value) for h in response.hits]

    def payloads(self, batch: int = 1024):
        offset = None
        while True:
            records, offset = self.shard.scroll(self.e.ScrollRequest(offset=offset, limit=batch, with_payload=True))
            yield from (r.payload for r in records)
            if offset is None:
                return

    def _filter(self, categories: Sequence[str] | None):
        if not categories:
            return None
        e = self.e
        return e.Filter(must=[e.FieldCondition(key=CATEGORY, match=e.MatchAny(any=list(categories)))])

    def maxsim(self, query: np.ndarray, limit: int, categories: Sequence[str] | None,
               prefetch: int | None, ef: int) -> list[Hit]:
        e = self.e
        f = self._filter(categories)
        stages = None
        if prefetch is not None:
            stages = [e.Prefetch(limit=prefetch, query=e.Query.Nearest(query.mean(axis=0).tolist(), using=POOLED),
                                 filter=f, params=e.SearchParams(hnsw_ef=max(ef, prefetch)))]
        points = self.shard.query(e.QueryRequest(limit=limit, query=e.Query.Nearest(query.tolist(), using=QUERIES),
                                                 prefetches=stages, filter=f, with_payload=True))
        return [Hit(p.payload, float(p.score)) for p in points]

    def nearest_captions(self, queries: np.ndarray, limit: int, categories: Sequence[str] | None,
                         exact: bool, ef: int) -> list[list[Hit]]:
        e = self.e
        f = self._filter(categories)
        params = e.SearchParams(exact=exact, hnsw_ef=max(ef, limit))
        answers = self.shard.query_batch(e.QueryBatchRequest([
            e.QueryRequest(limit=limit, query=e.Query.Nearest(v.tolist(), using=CAPTION), filter=f,
                           with_payload=True, params=params) for v in queries]))
        return [[Hit(p.payload, float(p.score)) for p in a] for a in answers]

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        """Close the shard for the whole process (every handle of this path shares it)."""
        if self.shard is not None:
            _EDGE_SHARDS.pop(str(self.path), None)
            self.shard.close()
            self.shard = None


_EDGE_SHARDS: dict[str, object] = {}  # resolved shard folder -> the process's one open shard


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
