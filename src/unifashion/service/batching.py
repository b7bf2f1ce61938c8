"""Who gets the model when: text searches that arrive together are answered together, and the heavy
model calls (caption, generate) take turns.

Searches run in parallel in FastAPI's thread pool; they only read the index, warmed before the app is
made. On a CPU the text encoder is the larger part of a text search and batches well (8 texts take
about twice the time of one), so under concurrent load the service encodes every text search waiting
in the queue in one pass instead of one pass per request in parallel threads that fight over the
cores. No request waits for a batch to fill: the worker takes whatever has queued while the previous
batch ran (one request alone at low load; up to `max_batch` under load).

The heavy calls take turns behind one lock: at most `max_waiting` wait for it, each for a bounded
time, and the rest are refused at once (503).
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

from fastapi import HTTPException

from unifashion.search.engine import CatalogSearch, SearchHit, TextQuery

_STOP = object()


class TextSearchBatcher:
    """`batcher(query)` -> the query's hits, from one worker thread that searches in batches."""

    def __init__(self, search: CatalogSearch, max_batch: int = 16):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.search = search
        self.max_batch = max_batch
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # sizes of the latest batches answered
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = True
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start the worker; again after close() (an app whose lifespan runs more than once)."""
        if self._closed:
            self._queue = queue.SimpleQueue()
            self._closed = False
            self._thread = threading.Thread(target=self._serve, args=(self._queue,), name="text-search-batcher",
                                            daemon=True)
            self._thread.start()

    def __call__(self, query: TextQuery) -> list[SearchHit]:
        if self._closed:
            raise RuntimeError("the text search batcher is closed")
        future: Future = Future()
        self._queue.put((query, future))
        return future.result()  # raises the search's own error for this query

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        stop = False
        while not stop:
            item = jobs.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    item = jobs.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._answer(batch)

    def _answer(self, batch: Sequence[tuple[TextQuery, Future]]) -> None:
        try:
            results = self.search.text_queries([query for query, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - delivered to the waiting request(s), never lost
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
            else:  # one bad query must not fail the others: each alone, each with its own answer
                for one in batch:
                    self._answer([one])
            return
        self.batch_sizes.append(len(batch))
        for (_, future), hits in zip(batch, results):
            future.set_result(hits)


class ModelTurns:
    """The heavy model calls (caption, generate) take turns: one runs, at most `max_waiting` wait for it
    (each up to its own wait), and the rest are refused at once with a 503."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self.waiting = 0
        self._model = threading.Lock()
        self._count = threading.Lock()

    @contextmanager
    def turn(self, wait_s: float) -> Iterator[None]:
        if not self._model.acquire(blocking=False):
            with self._count:
                if self.waiting >= self.max_waiting:
                    raise HTTPException(503, f"the model is busy and {self.waiting} more requests wait for it "
                                             f"(the limit); try again shortly", headers={"Retry-After": "5"})
                self.waiting += 1
            try:
                acquired = self._model.acquire(timeout=max(wait_s, 0.0))
            finally:
                with self._count:
                    self.waiting -= 1
            if not acquired:
                raise HTTPException(503, "the model is busy with another caption or generation; try again shortly",
                                    headers={"Retry-After": "5"})
        try:
            yield
        finally:
            self._model.release()
