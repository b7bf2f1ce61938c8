"""An index folder, whichever backend holds its vectors: the manifest says (`"backend": "qdrant"`, or
none for the built-in segments), and `open_index` returns the matching index. Every command and the
service open indexes here; a command that changes one holds `index_writer` around its whole run."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from unifashion.errors import DataError
from unifashion.search.catalog_index import FORMAT, FORMAT_VERSION, CatalogIndex
from unifashion.storage import MANIFEST, WriterLock, read_manifest, recover_dir


def index_manifest(root: Path) -> dict:
    """The folder's manifest, read without opening the index (DataError when the folder holds none)."""
    root = Path(root)
    recover_dir(root)  # a rebuild interrupted between its two renames left the previous index aside
    manifest = read_manifest(root, DataError, format=FORMAT, version=FORMAT_VERSION)
    if manifest is None:
        raise DataError(f"{root}: not a UniFashion index (no {MANIFEST})")
    return manifest


def index_backend(root: Path) -> str:
    """"qdrant" or "builtin" (DataError when the folder holds no index)."""
    return str(index_manifest(root).get("backend", "builtin"))


def open_index(root: Path, *, verify: bool = True):
    """The index at `root`: a `CatalogIndex` (built-in; `verify` checks every file's sha256) or a
    `QdrantIndex` (its collection checked to exist, be complete and come from the same model)."""
    root = Path(root)
    manifest = index_manifest(root)
    backend = manifest.get("backend", "builtin")
    if backend == "builtin":
        return CatalogIndex.open(root, verify=verify)
    if backend == "qdrant":
        from unifashion.search.qdrant_index import QdrantIndex

        return QdrantIndex.open(root, manifest)
    raise DataError(f"{root / MANIFEST}: unknown index backend {backend!r}")


def index_writer(root: Path, wait_seconds: float = 0.0) -> AbstractContextManager:
    """The folder's writer lock (`storage.WriterLock`) for a change's whole run, embedding included:
    taken before the index is opened, so that a writer that waited for another opens what that one
    left. Another writer holding it: wait up to `wait_seconds`, then one line naming its pid. Either
    backend (a Qdrant folder's manifest is rewritten by every change too). Under `accelerate launch`
    only the main process, which alone writes, takes it."""
    from unifashion.processes import process_state

    index_manifest(root)  # not an index: that line, before a lock file is made anywhere
    if not process_state().is_main_process:
        return nullcontext()
    return WriterLock(Path(root), DataError, wait_seconds=wait_seconds)
