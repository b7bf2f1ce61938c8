import numpy as np
import pytest
import torch
from torchmetrics.image.kid import poly_mmd

from unifashion.evaluation.generation_metrics import (InceptionFeatures, dominant_colour,
                                              dominant_colour_match, frechet_distance,
                                              kernel_inception_distance)


def test_fid_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(50, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fid_mean_shift_is_squared_norm():
    a = np.random.default_rng(1).normal(size=(200, 3))
    mu = np.array([1.0, -2.0, 0.5])
    assert frechet_distance(a, a + mu) == pytest.approx(mu @ mu)  # same covariance exactly


def test_fid_hand_computed_1d_and_2d():
    # 1-D: a = [-1, 1] (mean 0, unbiased var 2), b = [1, 5] (mean 3, var 8):
    # (0 - 3)^2 + (sqrt 2 - sqrt 8)^2 = 9 + 2 = 11
    assert frechet_distance([[-1.0], [1.0]], [[1.0], [5.0]]) == pytest.approx(11.0)
    # 2-D: a has cov (2/3) I, mean 0; b = 2a + (3, 4) has cov (8/3) I:
    # 25 + 2 * (2/3 + 8/3 - 2 * 4/3) = 25 + 4/3
    a = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    assert frechet_distance(a, 2 * a + [3, 4]) == pytest.approx(25 + 4 / 3)


def test_fid_matches_symmetric_closed_form():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 3))
    b = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 3)) + 1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()  # Tr sqrt(S1^1/2 S2 S1^1/2)
    d = a.mean(0) - b.mean(0)
    assert frechet_distance(a, b) == pytest.approx(d @ d + np.trace(s1) + np.trace(s2) - 2 * cross)


def test_fid_with_fewer_samples_than_dimensions_matches_the_eigen_and_sqrtm_forms():
    # the low-rank path (nuclear norm of the centred cross product) against the symmetric eigen
    # form and against pytorch-fid's scipy sqrtm, on 20 samples in 64 dimensions
    from scipy import linalg

    rng = np.random.default_rng(4)
    a = rng.normal(size=(20, 64)) @ rng.normal(size=(64, 64)) * 0.2
    b = rng.normal(size=(25, 64)) @ rng.normal(size=(64, 64)) * 0.2 + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    d = a.mean(0) - b.mean(0)
    expected = d @ d + np.trace(s1) + np.trace(s2) - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    scipy_cross = np.trace(linalg.sqrtm(s1 @ s2)).real
    assert frechet_distance(a, b) == pytest.approx(d @ d + np.trace(s1) + np.trace(s2) - 2 * scipy_cross, rel=1e-4)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))


def test_kid_hand_computed_linear_kernel():
    # k(x, y) = x y: off-diagonal xx = 2*2 = 4, yy = 2*12 = 24, xy sum = 3*7 = 21
    # (4 + 24) / (2*1) - 2 * 21 / 4 = 3.5
    mean, std = kernel_inception_distance([[1.0], [2.0]], [[3.0], [4.0]], subsets=3, subset_size=2,
                                          degree=1, gamma=1.0, coef=0.0)
    assert (mean, std) == pytest.approx((3.5, 0.0))


def test_kid_matches_torchmetrics():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 16)), rng.normal(size=(30, 16)) + 0.3
    mean, std = kernel_inception_distance(a, b, subsets=1, subset_size=30)  # whole sets: order-free
    ref = poly_mmd(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert mean == pytest.approx(ref, rel=1e-10) and std == 0.0
    m1 = kernel_inception_distance(a, b, subsets=20, subset_size=10, seed=7)
    assert m1 == kernel_inception_distance(a, b, subsets=20, subset_size=10, seed=7)
    assert m1[1] > 0
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(a, b, subset_size=31)


def _garment(rgb, background=(255, 255, 255), size=32):
    im = np.empty((size, size, 3), np.uint8)
    im[:] = background
    im[8:24, 8:24] = rgb
    return im


PALETTE = {"red": (220, 20, 30), "blue": (30, 40, 200), "white": (250, 250, 250), "black": (10, 10, 10)}


def test_dominant_colour_solid_images():
    np.testing.assert_allclose(dominant_colour(_garment((200, 10, 10))), [200, 10, 10])
    np.testing.assert_allclose(dominant_colour(_garment((240, 240, 240), background=(0, 0, 0))), [240] * 3)
    assert dominant_colour(np.full((32, 32, 3), 255, np.uint8)) is None  # nothing but background
    half = _garment((200, 10, 10))
    half[8:24, 8:13] = (20, 20, 180)  # 5 of 16 columns blue: the median stays red
    np.testing.assert_allclose(dominant_colour(half), [200, 10, 10])


def test_dominant_colour_match_fraction():
    images = np.stack([_garment((200, 10, 10)),                      # red, asked red (different shade)
                       _garment((20, 20, 180)),                      # blue, asked red -> miss
                       _garment((240, 240, 240), background=(0, 0, 0)),  # white on black, asked white
                       np.full((32, 32, 3), 255, np.uint8)])         # no garment -> miss
    requested = np.array([[250, 0, 0], [250, 0, 0], [255, 255, 255], [255, 255, 255]])
    assert dominant_colour_match(images, requested, PALETTE) == 0.5


def test_inception_preprocess_range_and_resize():
    x = InceptionFeatures.preprocess(np.stack([np.full((40, 60, 3), v, np.uint8) for v in (0, 128, 255)]))
    assert x.shape == (3, 3, 299, 299) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], -1.0, atol=1e-5)      # TF range: (v - 128) / 128
    np.testing.assert_allclose(x[1], 0.0, atol=1e-5)
    np.testing.assert_allclose(x[2], 0.9921875, atol=1e-5)
    im = np.random.default_rng(0).integers(0, 256, (1, 299, 299, 3), dtype=np.uint8)
    np.testing.assert_array_equal(InceptionFeatures.preprocess(im)[0], (im[0].transpose(2, 0, 1) - 128.0) / 128)
    with pytest.raises(ValueError, match="uint8"):
        InceptionFeatures.preprocess(np.zeros((1, 8, 8, 3), np.float32))


def test_inception_features_finite_deterministic_batch_invariant():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    net = InceptionFeatures(batch_size=2)
    f1 = net(images)
    assert f1.shape == (2, 2048) and f1.dtype == np.float64 and np.isfinite(f1).all()
    assert (f1 >= 0).all() and f1.std() > 0  # pool3 after ReLU
    net.batch_size = 1
    np.testing.assert_allclose(net(images), f1, rtol=1e-4, atol=1e-5)  # deterministic, batch-invariant
