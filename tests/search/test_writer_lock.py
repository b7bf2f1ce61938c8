"""Two writers on one built-in index are kept apart: a writer in another process holds the folder's lock
(storage.WriterLock) and the second is refused with one line naming its pid, or waits with wait_seconds;
the lock nests inside `CatalogIndex.writer()`; an index object that another writer overtook is refused
and writes nothing; the manifest's revision counts the changes (an old manifest without one opens)."""
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from unifashion.errors import DataError
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.storage import LOCK_FILE, WriterLock

# a second process: takes the folder's lock, says so, holds it until its stdin closes
HOLDER = """
import sys
from unifashion.storage import WriterLock
with WriterLock(sys.argv[1], RuntimeError):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held_by_another_process(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=30)


def _vectors(n, q=4, e=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, q, e)).astype(np.float16), rng.normal(size=(n, e)).astype(np.float16)


def _items(ids):
    return [CatalogItem(item_id=i, product_id=i, category="tops", title=f"item {i}") for i in ids]


def _index(tmp_path, n=6):
    index = CatalogIndex.create(tmp_path / "idx", fingerprint="f" * 64, model_source="m", num_queries=4, embed_dim=8)
    index.add(_items([f"a{i}" for i in range(n)]), *_vectors(n))
    return index


def _state(root):
    """The manifest's text and the segment folders: what a refused writer must leave as they were."""
    return (root / "manifest.json").read_text(), sorted(p.name for p in (root / "segments").iterdir())


def test_a_second_writer_is_refused_with_one_line_naming_its_pid(tmp_path):
    index = _index(tmp_path)
    root = index.root
    before = _state(root)
    with held_by_another_process(root) as holder:
        for change in (lambda: index.add(_items(["b0"]), *_vectors(1, seed=1)), lambda: index.remove(["a0"]),
                       index.compact):
            with pytest.raises(DataError) as refused:
                change()
            message = str(refused.value)
            assert message == (f"{root}: another writer (pid {holder.pid}) is changing it; try again when it "
                               "finishes (or wait with --wait-seconds)")
            assert "\n" not in message
        with pytest.raises(DataError, match=f"pid {holder.pid}"):
            with index.writer():
                pass
        with pytest.raises(DataError, match=f"pid {holder.pid}"):  # a rebuild does not swap it away either
            CatalogIndex.create(root, fingerprint="e" * 64, model_source="m", num_queries=4, embed_dim=8,
                                overwrite=True)
        assert _state(root) == before and "a0" in index and "b0" not in index
        assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no staged rebuild left beside it
    index.add(_items(["b0"]), *_vectors(1, seed=1))  # released: the same object writes
    assert "b0" in CatalogIndex.open(root)


def test_with_wait_seconds_the_second_writer_waits_for_the_first(tmp_path):
    index = _index(tmp_path)
    with held_by_another_process(index.root) as holder:
        with pytest.raises(DataError, match=r"waited 0\.3 s; wait longer with --wait-seconds"):
            with index.writer(wait_seconds=0.3):
                pass
        threading.Timer(0.5, holder.stdin.close).start()  # the first writer finishes half a second from now
        start = time.monotonic()
        with index.writer(wait_seconds=20):
            waited = time.monotonic() - start
            index.add(_items(["b0"]), *_vectors(1, seed=1))
    assert 0.3 < waited < 15
    assert "b0" in CatalogIndex.open(index.root)


def test_the_lock_nests_inside_writer_and_keeps_threads_apart(tmp_path):
    index = _index(tmp_path)
    with index.writer() as same:
        assert same is index
        index.add(_items(["b0", "b1"]), *_vectors(2, seed=1))  # takes the lock again: nests, no deadlock
        index.remove(["a0"])
        index.compact()
        with WriterLock(index.root, DataError):  # another lock object on the same folder nests too
            pass
        other = CatalogIndex.open(index.root)
        refused = []

        def write_from_another_thread():
            try:
                other.remove(["a1"])
            except DataError as e:
                refused.append(str(e))

        thread = threading.Thread(target=write_from_another_thread)
        thread.start()
        thread.join()
        assert len(refused) == 1 and "another writer" in refused[0]
    assert len(CatalogIndex.open(index.root)) == 7 and len(index.segments) == 1
    other.remove(["a1"])  # the lock is free again once the outer block ends
    assert not (index.root / LOCK_FILE).read_text()  # the pid is cleared on release


def test_an_index_changed_by_another_writer_since_it_was_opened_is_refused(tmp_path):
    index = _index(tmp_path)
    stale = CatalogIndex.open(index.root)
    CatalogIndex.open(index.root).add(_items(["b0"]), *_vectors(1, seed=1))
    before = _state(index.root)
    expected = (f"{index.root}: the index was changed by another writer since it was opened; "
                "run the command again")
    for change in (lambda: stale.add(_items(["c0"]), *_vectors(1, seed=2)), lambda: stale.remove(["a0"]),
                   stale.compact):
        with pytest.raises(DataError) as refused:
            change()
        assert str(refused.value) == expected
    with pytest.raises(DataError, match="changed by another writer"):
        with stale.writer():
            pass
    assert _state(index.root) == before  # no manifest write, no new segment
    fresh = CatalogIndex.open(index.root)
    assert "b0" in fresh and "a0" in fresh and "c0" not in fresh
    fresh.add(_items(["c0"]), *_vectors(1, seed=2))  # reopened: it writes


def test_the_revision_counts_every_change(tmp_path):
    root = tmp_path / "idx"
    index = CatalogIndex.create(root, fingerprint="f" * 64, model_source="m", num_queries=4, embed_dim=8)
    on_disk = lambda: json.loads((root / "manifest.json").read_text())["revision"]
    assert index.revision == on_disk() == 0
    index.add(_items(["a0", "a1", "a2"]), *_vectors(3))
    assert index.revision == on_disk() == 1
    index.remove(["a1"])
    index.compact()
    assert index.revision == on_disk() == 3
    reopened = CatalogIndex.open(root)
    assert reopened.revision == 3 and reopened.describe()["revision"] == 3
    rebuilt = CatalogIndex.create(root, fingerprint="e" * 64, model_source="m", num_queries=4, embed_dim=8,
                                  overwrite=True)  # the old folder's lock file goes with it
    assert rebuilt.revision == on_disk() == 0 and len(CatalogIndex.open(root)) == 0
    with pytest.raises(DataError, match="changed by another writer"):
        reopened.add(_items(["b0"]), *_vectors(1, seed=1))  # it read the index that was replaced


def test_an_old_manifest_without_a_revision_opens_and_counts_from_zero(tmp_path):
    index = _index(tmp_path)
    path = index.root / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["revision"]
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    old = CatalogIndex.open(index.root)
    assert old.revision == 0 and len(old) == 6
    old.add(_items(["b0"]), *_vectors(1, seed=1))
    assert json.loads(path.read_text())["revision"] == 1 and CatalogIndex.open(index.root).revision == 1
    assert (index.root / LOCK_FILE).is_file()
    segments = json.loads(path.read_text())["segments"]
    assert all(LOCK_FILE not in entry["files"] for entry in segments)  # the manifest lists segments' files only


def test_index_commands_are_refused_while_another_writer_holds_the_index_and_wait_with_wait_seconds(tmp_path):
    from typer.testing import CliRunner

    from unifashion.cli import app

    from PIL import Image

    index = _index(tmp_path)
    (tmp_path / "new").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "new" / "b0.png")
    before = _state(index.root)
    runner = CliRunner()
    with held_by_another_process(index.root) as holder:
        for args in (["index", "remove", "--index", str(index.root), "a1"],
                     ["index", "compact", "--index", str(index.root)],
                     ["index", "add", "--index", str(index.root), "--images", str(tmp_path / "new")]):
            result = runner.invoke(app, args)
            assert result.exit_code != 0 and f"another writer (pid {holder.pid})" in str(result.exception), args
        assert _state(index.root) == before
        threading.Timer(0.5, holder.stdin.close).start()
        result = runner.invoke(app, ["index", "remove", "--index", str(index.root), "a1", "--wait-seconds", "20",
                                     "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 5 and "a1" not in CatalogIndex.open(index.root)
