"""The benchmarks' own correctness (not their timings): exact references agree, augmented data is
what it claims, targets are marked right, and every script answers --help."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import Target  # noqa: E402
from search import augmented_vectors, exact_faiss, exact_numpy, recall  # noqa: E402


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_exact_faiss_and_exact_numpy_find_the_same_items_by_their_best_vector():
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(9000, 4, 16))).astype(np.float16)  # > one 8192-item block
    queries = _unit(rng.normal(size=(5, 16)))
    by_numpy, by_faiss = exact_numpy(vectors, queries, 10), exact_faiss(vectors, queries, 10)
    scores = (vectors.astype(np.float32) @ queries.T).max(axis=1)  # (N, B): each item's best vector
    truth = np.argsort(-scores, axis=0, kind="stable")[:10].T  # (B, 10)
    np.testing.assert_array_equal(by_numpy, truth)
    np.testing.assert_array_equal(by_faiss, truth)


def test_recall_counts_shared_items_in_the_top_k():
    assert recall(np.array([[1, 2, 3, 4]]), np.array([[4, 3, 9, 8]]), 2) == 0.0
    assert recall(np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), np.array([[2, 1, 0, 0], [5, 0, 0, 0]]), 2) == 0.75


def test_augmented_vectors_keep_the_real_items_first_and_unit_norm(tmp_path):
    base = _unit(np.random.default_rng(1).normal(size=(20, 4, 16)))
    out = augmented_vectors(base, 100, tmp_path / "v.npy")
    assert out.shape == (100, 4, 16) and out.dtype == np.float16
    np.testing.assert_allclose(out[:20], base, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float32), axis=-1), 1.0, atol=2e-3)
    assert not (tmp_path / "v.npy.tmp").exists()
    again = augmented_vectors(base, 100, tmp_path / "w.npy")
    np.testing.assert_array_equal(out, again)  # seeded


@pytest.mark.parametrize("measured, target, higher, met", [(3.1, 3.0, True, True), (2.9, 3.0, True, False),
                                                           (40.0, 50.0, False, True), (51.0, 50.0, False, False)])
def test_targets_are_marked_met_by_their_direction(measured, target, higher, met):
    t = Target("x", measured, target, higher)
    assert t.met is met and ("NOT met" in t.describe()) is (not met)


def test_every_benchmark_answers_help():
    for script in ("encoding", "training", "search", "generation", "serving", "captioning"):
        r = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--help"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and "--quick" in r.stdout, (script, r.stderr)
