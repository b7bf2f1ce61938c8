"""The catalog index: exact scores on hand-computed cases, approximate search against exact, and the
persistence round trips (add, replace, remove, compact, reopen, damage detection, resumable builds)."""
import json

import numpy as np
import pytest

from unifashion.errors import DataError
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.search.vector_index import AnnConfig, MultiVectorIndex, Reduce


def test_max_and_mean_scores_match_hand_computed_values():
    # 2 items x 2 vectors, 2-d; query has 2 vectors
    items = np.array([[[1, 0], [0, 1]],
                      [[0.6, 0.8], [-1, 0]]], dtype=np.float32)
    query = np.array([[[1, 0], [0.6, 0.8]]], dtype=np.float32)  # (1, 2, 2)
    index = MultiVectorIndex(items)
    # item 0: query vec a=(1,0): best 1.0; b=(.6,.8): best max(.6,.8)=.8 -> max 1.0, mean .9
    # item 1: a: max(.6,-1)=.6; b: max(.36+.64, -.6)=1.0 -> max 1.0, mean .8
    np.testing.assert_allclose(index.scores(query, np.array([0, 1]), Reduce.MAX), [[1.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(index.scores(query, np.array([0, 1]), Reduce.MEAN), [[0.9, 0.8]], atol=1e-6)
    scores, rows = index.search(query, 2, reduce=Reduce.MEAN)
    assert rows.tolist() == [[0, 1]]
    # one query vector: the best item vector wins (BLIP-2's max over queries)
    scores, rows = index.search(np.array([[[0, 1]]], dtype=np.float32), 2)
    assert rows.tolist() == [[0, 1]] and np.allclose(scores, [[1.0, 0.8]])


def test_search_masks_and_pads():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 3, 4)).astype(np.float32)
    index = MultiVectorIndex(vectors)
    q = rng.normal(size=(2, 1, 4)).astype(np.float32)
    allowed = np.array([True, False, True, False, False])
    scores, rows = index.search(q, 4, allowed=allowed)
    assert set(rows[0, :2].tolist()) == {0, 2} and rows[0, 2:].tolist() == [-1, -1]
    assert np.isneginf(scores[0, 2:]).all()
    brute = np.einsum("nve,be->bnv", vectors, q[:, 0]).max(axis=2)  # (B, N)
    full_scores, full_rows = index.search(q, 5)
    for b in range(2):
        assert full_rows[b].tolist() == np.argsort(-brute[b], kind="stable").tolist()
        np.testing.assert_allclose(full_scores[b], np.sort(brute[b])[::-1], rtol=1e-5)


def _clustered(n, v, e, seed=0):
    """Item vectors around per-item centres (an image's queries are related), normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n, 1, e))
    x = centres + 0.6 * rng.normal(size=(n, v, e))
    return (x / np.linalg.norm(x, axis=2, keepdims=True)).astype(np.float32)


def _catalog_like(n, v, e, groups=30, seed=0):
    """Items in groups (categories, colours), each item's vectors around it: neighbours share a region,
    as real embeddings do (on isotropic random vectors no IVF index finds the 10th neighbour)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 1, e))[rng.integers(0, groups, n)]  # (n, 1, e)
    x = centres + 0.5 * rng.normal(size=(n, 1, e)) + 0.3 * rng.normal(size=(n, v, e))
    return (x / np.linalg.norm(x, axis=2, keepdims=True)).astype(np.float32)


def test_approximate_top10_agrees_with_exact():
    vectors = _catalog_like(3000, 8, 32)
    config = AnnConfig(pq_bytes=8)  # the default nprobe and candidates
    approx = MultiVectorIndex(vectors, config, MultiVectorIndex.build_ann(vectors, config))
    exact = MultiVectorIndex(vectors, config)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(3000, 100), rng.integers(0, 8, 100)] + 0.2 * rng.normal(size=(100, 32))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)[:, None, :]
    _, a = approx.search(queries, 10)
    _, x = exact.search(queries, 10)
    agree = np.mean([set(a[i]) == set(x[i]) for i in range(100)])
    assert agree >= 0.95, agree
    # re-scoring is exact: every returned score is the true one
    s, r = approx.search(queries[:5], 10)
    np.testing.assert_allclose(s, np.take_along_axis(exact.scores(queries[:5], np.arange(3000)), r, axis=1), rtol=1e-5)


def test_many_lists_assign_through_an_hnsw_graph_and_still_agree_with_exact(tmp_path):
    import faiss

    from unifashion.search.vector_index import HNSW_QUANTIZER_LISTS

    vectors = _catalog_like(3000, 30, 16, groups=60)  # 90k vectors: enough to train 2048 lists
    config = AnnConfig(pq_bytes=4, nlist=HNSW_QUANTIZER_LISTS)
    ann = MultiVectorIndex.build_ann(vectors, config)
    faiss.write_index(ann, str(tmp_path / "ann.faiss"))  # as a segment stores it
    approx = MultiVectorIndex(vectors, config, faiss.read_index(str(tmp_path / "ann.faiss")))
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(approx.ann).quantizer)
    assert isinstance(quantizer, faiss.IndexHNSW) and quantizer.hnsw.efSearch >= config.nprobe
    rng = np.random.default_rng(2)
    queries = vectors[rng.choice(3000, 50), rng.integers(0, 30, 50)][:, None, :]
    _, a = approx.search(queries, 10)
    _, x = MultiVectorIndex(vectors, config).search(queries, 10)
    assert np.mean([set(a[i]) == set(x[i]) for i in range(50)]) >= 0.95


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

    monkeypatch.setattr("unifashion.search.catalog_index._file_entry", crash)
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


def test_vector_file_reads_what_numpy_indexing_reads(tmp_path):
    from unifashion.search.vector_index import VectorFile

    array = np.random.default_rng(3).normal(size=(50, 4, 8)).astype(np.float16)
    np.save(tmp_path / "v.npy", array)
    vf = VectorFile(tmp_path / "v.npy")
    assert vf.shape == (50, 4, 8) and vf.dtype == np.float16 and len(vf) == 50
    for key in (7, -1, slice(3, 9), slice(0, 50, 7), slice(48, 60), np.array([5, 6, 7, 2, 40, 41, 0]),
                np.array([], dtype=np.int64), (slice(0, 5), 0), (3, 1)):
        np.testing.assert_array_equal(vf[key], array[key])
    np.testing.assert_array_equal(np.asarray(vf, dtype=np.float32), array.astype(np.float32))
    with pytest.raises(IndexError):
        vf[50]
    with pytest.raises(IndexError):
        vf[np.array([1, 50])]


def test_candidates_grow_with_the_catalog_unless_set():
    from unifashion.search.vector_index import default_candidates

    assert [default_candidates(n) for n in (3_000, 250_000, 1_000_000)] == [200, 200, 800]
    vectors = np.zeros((10, 2, 4), np.float32)
    assert MultiVectorIndex(vectors).candidates == 200
    assert MultiVectorIndex(vectors, AnnConfig(candidates=7)).candidates == 7


def test_float16_vectors_widen_exactly():
    from unifashion.search.vector_index import as_float32

    half = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float16)
    wide = as_float32(half)
    assert wide.dtype == np.float32 and wide.shape == (5, 3, 8)
    np.testing.assert_array_equal(wide, half.astype(np.float32))
    np.testing.assert_array_equal(as_float32(wide), wide)
