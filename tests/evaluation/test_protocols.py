import numpy as np
import pytest

from unifashion.evaluation.protocols import (cmr_full, cmr_sample100, combine_scores, fashioniq_recall,
                                             fashioniq_summary, query_text, sample_negatives)

# sim[image, text]; items 1 and 2 share a product; item 3 is alone in subcategory B.
SIM4 = np.array([[0.5, 0.9, 0.1, 0.0],
                 [0.2, 0.8, 0.99, 0.0],
                 [0.3, 0.0, 0.3, 0.0],
                 [1.0, 0.0, 0.0, 0.7]])
PIDS4 = np.array([0, 1, 1, 2])
SUBCATS4 = np.array(["A", "A", "A", "B"])


def test_sample100_hand_computed_directions_and_exclusions():
    # i2t (image row vs text candidates):
    #   image0: pos 0.5 vs texts 1, 2 (0.9, 0.1) -> rank 1
    #   image1: pos 0.8 vs text 0 (0.2); text 2 (0.99) is the same product -> excluded -> rank 0
    #   image2: pos 0.3 vs text 0 (0.3): tie -> pessimistic rank 1
    #   image3: no same-subcategory negatives (image3 vs text0 = 1.0 is another subcategory) -> rank 0
    # t2i (text column vs image candidates):
    #   text0: pos 0.5 vs images 1, 2 (0.2, 0.3) -> 0;  text1: 0.8 vs image0 0.9 -> 1
    #   text2: 0.3 vs image0 0.1 (image1's 0.99 excluded) -> 0;  text3 -> 0
    with pytest.warns(UserWarning, match="fewer than 100"):
        r = cmr_sample100(SIM4, PIDS4, SUBCATS4, n_queries=1000, n_negatives=100)
    assert r["i2t"] == pytest.approx({1: 50.0, 5: 100.0, 10: 100.0})
    assert r["t2i"] == pytest.approx({1: 75.0, 5: 100.0, 10: 100.0})
    assert r["mean"] == pytest.approx(525 / 6)
    assert r["short_of_negatives"] == 4 * 2 * 5  # queries x directions x seeds
    assert r["min_negatives"] == 0


def test_sample_negatives_draws_same_subcategory_other_products():
    rng = np.random.default_rng(0)
    n = 400
    subcats = rng.integers(0, 2, n)
    pids = rng.integers(0, 150, n)  # many products repeat
    for q in (0, 7, 123):
        neg = sample_negatives(np.random.default_rng(q), q, pids, subcats, 100)
        assert len(neg) == 100 == len(set(neg.tolist()))
        assert (subcats[neg] == subcats[q]).all() and (pids[neg] != pids[q]).all() and q not in neg
    few = sample_negatives(rng, 0, pids, subcats, 10_000)  # fewer exist: all of them
    expected = np.flatnonzero((subcats == subcats[0]) & (pids != pids[0]))
    assert sorted(few.tolist()) == expected.tolist()


def test_sample100_seeded_statistics():
    rng = np.random.default_rng(1)
    n = 600
    subcats, pids = rng.integers(0, 3, n), np.arange(n)
    perfect = rng.normal(size=(n, n)) + 100 * np.eye(n)
    r = cmr_sample100(perfect, pids, subcats, n_queries=50, seeds=(0, 1))
    assert r["mean"] == 100.0 and r["short_of_negatives"] == 0 and r["min_negatives"] == 100
    noise = rng.normal(size=(n, n))
    a = cmr_sample100(noise, pids, subcats, n_queries=200, seeds=(0, 1, 2))
    assert a == cmr_sample100(noise, pids, subcats, n_queries=200, seeds=(0, 1, 2))  # deterministic
    assert a != cmr_sample100(noise, pids, subcats, n_queries=200, seeds=(5, 6, 7))
    assert 0 <= a["i2t"][1] < 5 and 3 < a["t2i"][10] < 20  # chance: 1/101, 10/101


def test_cmr_full_hand_computed():
    sim = np.array([[0.1, 0.9, 0.5],    # image0: positives texts 0, 1 (same product); 0.9 top -> hit
                    [0.2, 0.3, 0.95],   # image1: best positive 0.3 < 0.95 -> rank 1
                    [0.6, 0.1, 0.9]])   # image2: positive text2 0.9 top -> hit
    # t2i: text0 [0.1, 0.2 | 0.6] -> rank 1; text1 [0.9, 0.3 | 0.1] -> hit; text2 [0.5, 0.95 | 0.9] -> rank 1
    r = cmr_full(sim, [7, 7, 8], chunk=2)  # chunk smaller than N exercises the chunking
    assert r["i2t"] == pytest.approx({1: 200 / 3, 5: 100.0, 10: 100.0})
    assert r["t2i"] == pytest.approx({1: 100 / 3, 5: 100.0, 10: 100.0})
    assert r["mean"] == pytest.approx(500 / 6)
    assert cmr_full(sim, [7, 7, 8], ks=(2,))["t2i"] == {2: 100.0}  # t2i ranks are 1, 0, 1


def test_cmr_input_errors():
    with pytest.raises(ValueError, match="square"):
        cmr_full(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="product_ids"):
        cmr_sample100(np.zeros((2, 2)), [0], [0, 0])


def test_fashioniq_recall_keeps_reference_in_gallery():
    scores = np.tile(-np.arange(60.0), (3, 1))  # gallery index == rank
    # targets at ranks 5, 20 and 55; the reference (say index 0) is not removed and stays on top
    assert fashioniq_recall(scores, [5, 20, 55]) == pytest.approx({10: 100 / 3, 50: 200 / 3})
    assert fashioniq_recall(scores[:2], [9, 10], ks=(10,)) == {10: 50.0}


def test_fashioniq_summary():
    s = fashioniq_summary({"dress": {10: 30.0, 50: 60.0}, "shirt": {10: 20.0, 50: 50.0},
                           "toptee": {10: 40.0, 50: 70.0}})
    assert s == pytest.approx({"dress.r10": 30.0, "dress.r50": 60.0, "shirt.r10": 20.0, "shirt.r50": 50.0,
                               "toptee.r10": 40.0, "toptee.r50": 70.0,
                               "avg.r10": 30.0, "avg.r50": 60.0, "avg.score": 45.0})


def test_query_text():
    assert query_text("Is Red.", "has long sleeves?") == "Is red and has long sleeves"
    assert query_text(" is shorter, ", "..more blue.") == "Is shorter and more blue"


def test_combine_scores():
    img, cap = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0]])
    np.testing.assert_allclose(combine_scores(img, cap), [[1.5, 1.0]])
    np.testing.assert_allclose(combine_scores(img, cap, weight=2.0), [[2.0, 0.0]])
    with pytest.raises(ValueError, match="shape"):
        combine_scores(img, cap.T)
