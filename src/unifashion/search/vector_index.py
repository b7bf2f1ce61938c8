"""Search over items that each own several vectors, scored exactly as the model scores them.

An item owns V vectors (an image's 32 query embeddings, or one caption embedding); a query owns P
vectors (a text or composed query: 1; an image: its 32 query embeddings). The item's score is

    reduce over the query's vectors p of  max over the item's vectors v of  <x_p, y_v>

with reduce = max (BLIP-2's image-text score: the best query) or mean (image-to-image: each query
vector's best match, averaged). Numpy in, numpy out, like faiss.

Two modes, chosen by size (overridable): below `exact_below` items every score is computed (a float32
copy in memory); above it an IVF-PQ index over all item vectors proposes candidates — the items owning
the vectors nearest to any query vector — which are then re-scored exactly from the stored vectors
(float16 on disk, read row by row: resident memory is the PQ codes plus the rows being scored).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import faiss
import numpy as np
import torch

from unifashion.models.qformer import QFormer


class Reduce(Enum):
    MAX = "max"  # the best query vector (text and composed queries, image-to-text)
    MEAN = "mean"  # each query vector's best match, averaged (image-to-image)


@dataclass(frozen=True)
class AnnConfig:
    exact_below: int = 20_000  # items: exact scoring below this size, IVF-PQ candidates at or above it
    nlist: int = 0  # IVF lists; 0 = sqrt(vectors), clamped to [16, 65536]
    pq_bytes: int = 32  # bytes of PQ code per vector (the embedding size must divide by it)
    nprobe: int = 64  # IVF lists visited per query vector (scripts/index_agreement.py measures the effect)
    candidates: int = 0  # items re-scored exactly per query (at least k), the best by approximate score;
    # 0 = by size, max(200, items / 1250): near-ties the PQ codes cannot order grow with the catalog
    # (benchmarks/search.py at 1M items: recall@10 0.89 with 200, 0.99 with 800)
    vectors_per_candidate: int = 4  # nearest vectors fetched per wanted candidate (an item owns several)
    chunk_items: int = 4096  # items scored per block in exact mode (bounds temporary memory)


# At or above this many lists, vectors are assigned to lists through an HNSW graph over the centroids:
# a flat scan of every centroid costs vectors x lists x dim (1M items = 32M vectors x 5657 lists x 256
# dims ~ 90 TFLOP on the build's add; the graph visits a few hundred centroids per vector).
HNSW_QUANTIZER_LISTS = 2048


def as_float32(array) -> np.ndarray:
    """Stored vectors as float32; float16 is widened by torch, whose conversion is vectorised (numpy's is
    not, and was a large part of re-scoring a query's candidates)."""
    a = np.asarray(array)
    if a.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32).numpy()
    return np.asarray(a, dtype=np.float32)


def default_candidates(num_items: int) -> int:
    return max(200, num_items // 1250)


def default_nlist(num_vectors: int) -> int:
    """sqrt(vectors) lists: the build's k-means and list assignment stay affordable on a CPU (cost ~
    vectors^1.5), and at the fixed nprobe larger lists only raise candidate recall."""
    return int(min(65536, max(16, round(math.sqrt(num_vectors)))))


class VectorFile:
    """The rows of a `.npy` file (N, ...) read on demand with pread: numpy indexing by an int, a slice or
    an array of rows, and `np.asarray` for all of it.

    A memory map would serve the same reads, but the kernel maps whole large page-cache folios per
    touched row and counts them as the process's memory: after a few hundred queries most of a 1M-item
    file (16 GB) showed as resident. Read this way, a search holds only the rows it is scoring and the
    file's pages stay the operating system's cache. Reads at explicit offsets: safe across threads.
    """

    def __init__(self, path: str | Path):
        header = np.load(path, mmap_mode="r", allow_pickle=False)  # parses the header only
        self.path = Path(path)
        self.shape: tuple[int, ...] = tuple(header.shape)
        self.dtype = header.dtype
        self._offset = int(header.offset)
        del header
        self.ndim = len(self.shape)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    def _read(self, start: int, count: int) -> np.ndarray:
        buf = bytearray(count * self._row_bytes)
        view, done = memoryview(buf), 0
        while done < len(buf):
            n = os.preadv(self._fd, [view[done:]], self._offset + start * self._row_bytes + done)
            if n <= 0:
                raise OSError(f"{self.path}: file ended early (rows {start}..{start + count})")
            done += n
        return np.frombuffer(buf, dtype=self.dtype).reshape(count, *self.shape[1:])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then the rest on what was read
            return self[key[0]][(slice(None),) + key[1:]] if not isinstance(key[0], (int, np.integer)) \
                else self[key[0]][key[1:]]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {key} out of range for {n} rows")
            return self._read(i, 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self._read(start, max(0, stop - start))
            key = np.arange(start, stop, step)
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        out = np.empty((rows.size, *self.shape[1:]), dtype=self.dtype)
        if rows.size == 0:
            return out
        if rows.min() < 0 or rows.max() >= n:
            raise IndexError(f"rows out of range for {n} rows")
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read each
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, rows.size]):
            out[a:b] = self._read(int(rows[a]), int(b - a))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self._read(0, self.shape[0])
        return whole if dtype is None else whole.astype(dtype)


class MultiVectorIndex:
    """Items with V vectors each; `search` returns the top-k items by the exact model score."""

    def __init__(self, vectors: np.ndarray, config: AnnConfig = AnnConfig(), ann: faiss.Index | None = None):
        if vectors.ndim != 3:
            raise ValueError(f"vectors must be (items, vectors per item, dim), got shape {vectors.shape}")
        self.vectors = vectors  # (N, V, E): a VectorFile, a float16 memmap or any float array
        self.config = config
        self.ann = ann
        if ann is not None:
            ivf = faiss.extract_index_ivf(ann)
            ivf.nprobe = config.nprobe
            quantizer = faiss.downcast_index(ivf.quantizer)
            if isinstance(quantizer, faiss.IndexHNSW):  # the graph must offer at least nprobe lists
                quantizer.hnsw.efSearch = max(2 * config.nprobe, 64)
        self._dense: np.ndarray | None = None  # float32 copy for exact mode, made on first use

    @property
    def num_items(self) -> int:
        return self.vectors.shape[0]

    @property
    def approximate(self) -> bool:
        return self.ann is not None

    @property
    def candidates(self) -> int:
        """Items re-scored exactly per approximate query: the configured number, or by size."""
        return self.config.candidates or default_candidates(self.num_items)

    @staticmethod
    def build_ann(vectors: np.ndarray, config: AnnConfig, seed: int = 0) -> faiss.Index:
        """An IVF-PQ index over every item vector (vector id = item * V + v), trained on a sample."""
        n, v, e = vectors.shape
        if e % config.pq_bytes:
            raise ValueError(f"embedding size {e} is not divisible by pq_bytes {config.pq_bytes}")
        nlist = config.nlist or default_nlist(n * v)
        coarse = f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTIZER_LISTS else f"IVF{nlist}"
        index = faiss.index_factory(e, f"{coarse},PQ{config.pq_bytes}", faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(index).do_polysemous_training = False  # Hamming filtering unused; training 40x slower
        rng = np.random.default_rng(seed)
        # k-means wants ~40-256 points per list; PQ wants >= 256 per code
        train_n = min(n * v, max(64 * nlist, 20_000))
        pick = np.sort(rng.choice(n * v, size=train_n, replace=False))
        flat = vectors.reshape(n * v, e)
        index.train(np.ascontiguousarray(flat[pick], dtype=np.float32))
        for start in range(0, n * v, 65536):
            index.add(np.ascontiguousarray(flat[start:start + 65536], dtype=np.float32))
        return index

    # ---- exact scoring --------------------------------------------------------------------------

    def dense_vectors(self) -> np.ndarray:
        if self._dense is None:
            self._dense = np.ascontiguousarray(self.vectors, dtype=np.float32)  # (N, V, E)
        return self._dense

    @staticmethod
    def _block_scores(block: np.ndarray, q: np.ndarray, reduce: Reduce) -> np.ndarray:
        """Item scores (B, r) of a block of items (r, V, E) for queries (B, P, E), by one matrix product:
        the model's own max over the item's vectors (QFormer.similarity) per query vector, then reduced.
        In torch, not numpy: numpy's OpenBLAS threads keep spinning after a product and slow the next
        model encode in the same process (benchmarks/serving.py times a text search's two parts)."""
        r, v, e = block.shape
        b, p, _ = q.shape
        items = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))  # (r, V, E)
        queries = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).view(b * p, e)
        best = QFormer.similarity(items, queries).view(r, b, p)  # (r, B, P): each query vector's best item vector
        item = best.amax(dim=2) if reduce is Reduce.MAX else best.mean(dim=2)  # (r, B)
        return item.T.contiguous().numpy()

    def scores(self, queries: np.ndarray, rows: np.ndarray, reduce: Reduce = Reduce.MAX) -> np.ndarray:
        """Exact scores (B, R) of the items `rows` (R,) for queries (B, P, E)."""
        q = np.asarray(queries, dtype=np.float32)  # (B, P, E)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((q.shape[0], 0), dtype=np.float32)
        source = self._dense if self._dense is not None else self.vectors
        step = self.config.chunk_items
        out = []
        if rows.size == self.num_items and np.array_equal(rows, np.arange(self.num_items)):  # all: slices, no copies
            for start in range(0, self.num_items, step):
                out.append(self._block_scores(as_float32(source[start:start + step]), q, reduce))
        else:
            for start in range(0, rows.size, step):
                block = as_float32(source[rows[start:start + step]])  # (r, V, E)
                out.append(self._block_scores(block, q, reduce))
        return np.concatenate(out, axis=1)  # (B, R)

    # ---- search ---------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, reduce: Reduce = Reduce.MAX,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each query (B, P, E): scores (B, k) float32 and rows (B, k) int64, best first,
        padded with -inf / -1 where fewer than k items are allowed. `allowed` (N,) bool masks items
        (removed ones, a category filter)."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 3 or q.shape[2] != self.vectors.shape[2]:
            raise ValueError(f"queries must be (batch, vectors, {self.vectors.shape[2]}), got shape {q.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        live = np.arange(self.num_items) if allowed is None else np.flatnonzero(allowed)
        if self.ann is None or live.size <= max(k, self.candidates):
            rows = [live] * q.shape[0]
        else:
            rows = self._candidates(q, k, live.size, allowed)
        return self._top(q, rows, k, reduce)

    def _candidates(self, q: np.ndarray, k: int, live: int, allowed: np.ndarray | None) -> list[np.ndarray]:
        """Per query, the `candidates` allowed items whose best vector the ANN scores highest against any
        of the query's vectors (ascending rows, for memory locality when they are re-scored)."""
        b, p, e = q.shape
        v = self.vectors.shape[1]
        want = max(k, self.candidates)
        fetch_items = want
        if allowed is not None:  # over-fetch so that enough candidates survive the mask
            fetch_items = int(min(self.num_items, math.ceil(want * self.num_items / max(live, 1))))
        fetch = int(min(self.num_items * v, fetch_items * self.config.vectors_per_candidate))
        dist, ids = self.ann.search(q.reshape(b * p, e), fetch)  # (B*P, fetch) inner products, vector ids
        dist, ids = dist.reshape(b, p * fetch), ids.reshape(b, p * fetch)
        out = []
        for row_dist, row_ids in zip(dist, ids):
            found = row_ids >= 0
            order = np.argsort(-row_dist[found], kind="stable")
            items = row_ids[found][order] // v  # best approximate score first
            if allowed is not None:
                items = items[allowed[items]]
            _, first = np.unique(items, return_index=True)
            out.append(np.sort(items[np.sort(first)][:want]))  # the `want` best distinct items
        return out

    def _top(self, q: np.ndarray, rows: list[np.ndarray], k: int, reduce: Reduce) -> tuple[np.ndarray, np.ndarray]:
        b = q.shape[0]
        scores = np.full((b, k), -np.inf, dtype=np.float32)
        top_rows = np.full((b, k), -1, dtype=np.int64)
        if self.ann is None:
            self.dense_vectors()
        if all(r is rows[0] for r in rows):  # exact mode: one pass scores the whole batch
            all_scores = self.scores(q, rows[0], reduce)  # (B, R)
            per_query = [(rows[0], all_scores[i]) for i in range(b)]
        else:
            per_query = [(r, self.scores(q[i:i + 1], r, reduce)[0]) for i, r in enumerate(rows)]
        for i, (r, s) in enumerate(per_query):
            n = min(k, r.size)
            if n == 0:
                continue
            best = np.argpartition(-s, n - 1)[:n] if n < r.size else np.arange(r.size)
            best = best[np.lexsort((r[best], -s[best]))]  # by score, ties by row: deterministic
            scores[i, :n] = s[best]
            top_rows[i, :n] = r[best]
        return scores, top_rows
