"""The catalog index: the persistence round trips (add, replace, remove, compact, reopen), damage
detection, a failed add, a persisted approximate segment and the checks on shapes and ids."""
import json

import numpy as np
import pytest

from unifashion.errors import DataError
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.search.vector_index import AnnConfig


def _clustered(n, v, e, seed=0):
    """Item vectors around per-item centres (an image's queries are related), normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n, 1, e))
    x = centres + 0.6 * rng.normal(size=(n, v, e))
    return (x / np.linalg.norm(x, axis=2, keepdims=True)).astype(np.float32)


def _items(ids, category="tops"):
    return [CatalogItem(item_id=i, product_id=i, category=category, title=f"item {i}", caption=f"caption {i}")
            for i in ids]


def _new_index(tmp_path, n=30, q=4, e=8, seed=0, **kw):
    vectors = _clustered(n, q, e, seed)
    captions = _clustered(n, 1, e, seed + 1)[:, 0]
    index = CatalogIndex.create(tmp_path / "idx", fingerprint="f" * 64, model_source="m", num_queries=q, embed_dim=e, **kw)
    index.add(_items([f"a{i}" for i in range(n)]), vectors, captions)
    return index, vectors, captions


def test_round_trip_add_remove_replace_compact(tmp_path):
    index, vectors, captions = _new_index(tmp_path)
    q = vectors[[3, 7], 0][:, None, :]  # (2, 1, E): each an item's own query vector
    first = index.search(q, 5)
    assert [h[0][0].item_id for h in first] == ["a3", "a7"]
    reopened = CatalogIndex.open(tmp_path / "idx")
    again = reopened.search(q, 5)
    assert [[(it.item_id, round(s, 3)) for it, s in hits] for hits in again] == \
           [[(it.item_id, round(s, 3)) for it, s in hits] for hits in first]  # float16 on disk both times
    assert reopened.item("a3").caption == "caption a3"

    # add a segment; its items are found; a duplicate id is an error unless replacing
    extra = _clustered(5, 4, 8, seed=9)
    reopened.add(_items(["b0", "b1", "b2", "b3", "b4"], "shoes"), extra, _clustered(5, 1, 8, 10)[:, 0])
    assert len(reopened) == 35 and len(reopened.segments) == 2
    assert reopened.search(extra[[2], 0][:, None, :], 1)[0][0][0].item_id == "b2"
    assert [it.item_id for it, _ in reopened.search(q, 3, categories=["shoes"])[0]][0].startswith("b")
    with pytest.raises(DataError, match="already in the index"):
        reopened.add(_items(["a3"]), vectors[:1], captions[:1])
    reopened.add(_items(["a3"], "shoes"), extra[:1], captions[:1], replace=True)
    assert reopened.item("a3").category == "shoes" and len(reopened) == 35

    # remove: gone from results, also after reopening
    reopened.remove(["a7"])
    assert "a7" not in [it.item_id for it, _ in reopened.search(q[1:], 35)[0]]
    with pytest.raises(DataError, match="no item 'a7'"):
        reopened.remove(["a7"])
    third = CatalogIndex.open(tmp_path / "idx")
    assert len(third) == 34 and "a7" not in third and third.item("a3").category == "shoes"
    # a3 now holds b0's vectors: equal scores, whose order follows the rows, which compaction moves
    ranked = lambda results: [sorted((-round(s, 4), it.item_id) for it, s in hits) for hits in results]
    before = ranked(third.search(q, 34))

    # compact: one segment, same results, old segment folders gone
    third.compact()
    assert len(third.segments) == 1 and len(third) == 34
    assert ranked(third.search(q, 34)) == before
    assert sorted(p.name for p in (tmp_path / "idx" / "segments").iterdir()) == [third.segments[0].name]
    assert ranked(CatalogIndex.open(tmp_path / "idx").search(q, 34)) == before


def test_damage_is_detected_on_load(tmp_path):
    index, _, _ = _new_index(tmp_path)
    folder = tmp_path / "idx" / "segments" / index.segments[0].name
    data = bytearray((folder / "image_vectors.npy").read_bytes())
    data[-3] ^= 0xFF  # same size, different bytes
    (folder / "image_vectors.npy").write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch"):
        CatalogIndex.open(tmp_path / "idx")
    CatalogIndex.open(tmp_path / "idx", verify=False)  # sizes still match
    (folder / "items.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="bytes, the manifest says"):
        CatalogIndex.open(tmp_path / "idx", verify=False)
    (tmp_path / "idx" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        CatalogIndex.open(tmp_path / "idx")
    with pytest.raises(DataError, match="not a UniFashion index"):
        CatalogIndex.open(tmp_path / "nothing")


def test_a_failed_add_leaves_the_index_as_it_was(tmp_path, monkeypatch):
    index, vectors, captions = _new_index(tmp_path)
    manifest = (tmp_path / "idx" / "manifest.json").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("unifashion.search.catalog_index.file_entries", crash)
    with pytest.raises(OSError):
        index.add(_items(["z0"]), vectors[:1], captions[:1])
    assert (tmp_path / "idx" / "manifest.json").read_text() == manifest
    assert [p.name for p in (tmp_path / "idx" / "segments").iterdir()] == [index.segments[0].name]
    assert len(CatalogIndex.open(tmp_path / "idx")) == 30


def test_approximate_segment_persists(tmp_path):
    config = AnnConfig(exact_below=100, pq_bytes=4, nprobe=8, candidates=20)
    index, vectors, _ = _new_index(tmp_path, n=400, q=4, e=8, ann=config)
    assert index.segments[0].images.approximate and index.segments[0].captions.approximate
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert {"image_ann.faiss", "caption_ann.faiss"} <= set(manifest["segments"][0]["files"])
    q = vectors[:20, 0][:, None, :]
    found = [hits[0][0].item_id for hits in CatalogIndex.open(tmp_path / "idx").search(q, 5)]
    assert np.mean([f == f"a{i}" for i, f in enumerate(found)]) >= 0.95


def test_shapes_and_ids_are_checked(tmp_path):
    index, vectors, captions = _new_index(tmp_path)
    with pytest.raises(DataError, match="shape"):
        index.add(_items(["x"]), vectors[:1, :2], captions[:1])
    with pytest.raises(DataError, match="appears twice"):
        index.add(_items(["x", "x"]), vectors[:2], captions[:2])
    with pytest.raises(DataError, match="gallery captions"):
        index.add(_items(["x"]), vectors[:1], None)
    with pytest.raises(DataError, match="queries must be"):
        index.search(np.zeros((1, 1, 3)), 5)
