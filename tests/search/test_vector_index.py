"""The multi-vector index: exact scores on hand-computed cases, masking and padding, approximate search
against exact, the memory-mapped vector file and the float16 widening."""
import numpy as np
import pytest

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
