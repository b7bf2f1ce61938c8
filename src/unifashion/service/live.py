"""The index as it is on disk now: a running service picks up `index add`, `remove` and `compact`.

Every change to an index ends by renaming a new `manifest.json` into place (search/catalog_index.py,
storage.py), so a change shows as another file under that name: another inode, size or mtime. Each
request compares the manifest's `os.stat` with the one the loaded index was read from (a microsecond);
when it differs, one thread reopens the index (checked as at start: sizes and sha256 of every file),
warms it and checks it against the model, and then the service's state is swapped in one assignment.
Requests that arrive meanwhile wait for the new view up to `reload_wait_seconds`, then go on with the
old one; requests already running finish on the one they started with (its files stay open, so even
`compact` deleting its segments does not disturb them). A reload that fails keeps the old view and logs
one line; it is tried again when the manifest changes again.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread

from unifashion.search.engine import CatalogSearch
from unifashion.search.index_folder import open_index
from unifashion.storage import MANIFEST

logger = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class View:
    search: CatalogSearch
    categories: list[str]


def manifest_stamp(search: CatalogSearch) -> Stamp | None:
    """What identifies the index's manifest file now (None while it cannot be read: a rename under way)."""
    try:
        stat = os.stat(search.index.root / MANIFEST)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class LiveIndex:
    """Holds the current View of the index; `await live.current()` first reloads it when it changed."""

    def __init__(self, search: CatalogSearch, wait_seconds: float, on_swap: Callable[[View], None] = lambda v: None):
        self.view = View(search, search.categories())
        self.wait_seconds = wait_seconds
        self.on_swap = on_swap
        self.reloads = 0  # views swapped in since start
        self._stamp = manifest_stamp(search)
        self._lock = threading.Lock()
        self._reloading: threading.Event | None = None  # set when the reload under way has finished

    async def current(self) -> View:
        """The view to answer a request with: the new one when the index changed and reopens in time."""
        done = self._reloading
        if done is None:
            stamp = manifest_stamp(self.view.search)
            if stamp is None or stamp == self._stamp:
                return self.view
            done = self._start(stamp)
        if not done.is_set():
            await anyio.to_thread.run_sync(done.wait, self.wait_seconds)
        return self.view

    def _start(self, stamp: Stamp) -> threading.Event:
        with self._lock:
            if self._reloading is not None:
                return self._reloading
            done = self._reloading = threading.Event()
        threading.Thread(target=self._reload, args=(stamp, done), name="index-reload", daemon=True).start()
        return done

    def _reload(self, stamp: Stamp, done: threading.Event) -> None:
        old = self.view.search
        try:
            index = open_index(old.index.root)
            index.warm()
            search = CatalogSearch(old.model, index, old.config)
            view = View(search, search.categories())
        except Exception as failure:  # noqa: BLE001 - any failure keeps the old view; one line says why
            first = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
            logger.warning("the index changed on disk but cannot be reopened; still serving the previous %d items: %s",
                           len(old), first)
        else:
            self.view = view  # one assignment: a request reads either view whole
            self.reloads += 1
            self.on_swap(view)
            logger.info("the index changed on disk: reopened, %d items (%+d)", len(search), len(search) - len(old))
        finally:
            self._stamp = stamp
            with self._lock:
                self._reloading = None
            done.set()
