"""Attribute metrics that a dataset with ground-truth attributes makes possible.

- Captions: does a generated caption name the product's true category, colour and pattern
  (`caption_attribute_scores`), and does it loop ("knit knit knit", `has_loop`)? Values are found
  by the phrases of a vocabulary {attribute: {value: [phrase, ...]}} — the synthetic world ships
  one as catalog/vocabulary.json (`data.formats.catalog.load_vocabulary`); any data can.
- Images: a linear probe (`AttributeProbe`) reads attributes off fixed image features, so generated
  images can be scored by what a classifier trained on real ones sees; `garment_crop` is what it
  reads of a try-on garment, and `psnr_outside_mask` checks that try-on left the rest untouched.
Numpy in, numpy (or plain numbers) out; nothing here knows how the data was made.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

Vocabulary = Mapping[str, Mapping[str, Sequence[str]]]  # attribute -> value -> phrases naming it
CAPTION_ATTRIBUTES = ("category", "colour", "pattern")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


@functools.lru_cache(maxsize=4096)
def _phrase_regex(phrase: str) -> re.Pattern | None:
    """Whole-word, case-insensitive; a hyphen or space in the phrase matches either in the text."""
    words = [w for w in re.split(r"[-\s]+", phrase.strip().lower()) if w]
    if not words:
        return None
    return re.compile(r"(?<![a-z0-9])" + r"[-\s]+".join(map(re.escape, words)) + r"(?![a-z0-9])")


def find_mentions(text: str, phrases_by_value: Mapping[str, Sequence[str]]) -> list[str]:
    """Values whose phrases occur in `text`, in order of first appearance.

    Longest phrase first, and a span already matched is not matched again: "light blue" is one
    mention of "light blue" (not also "blue"), "t-shirt" is not also "shirt".
    """
    text = text.lower()
    phrases = sorted(((p, v) for v, ps in phrases_by_value.items() for p in ps),
                     key=lambda pv: (-len(pv[0]), pv[0], pv[1]))
    taken = np.zeros(len(text) + 1, dtype=bool)  # (len+1,) characters already claimed by a mention
    found: list[tuple[int, str]] = []  # (start, value)
    for phrase, value in phrases:
        regex = _phrase_regex(phrase)
        if regex is None:
            continue
        for m in regex.finditer(text):
            if not taken[m.start():m.end()].any():
                taken[m.start():m.end()] = True
                found.append((m.start(), value))
    ordered: list[str] = []
    for _, value in sorted(found):
        if value not in ordered:
            ordered.append(value)
    return ordered


def caption_attribute_flags(caption: str, truth: Mapping[str, str], vocabulary: Vocabulary) -> dict[str, bool]:
    """Per attribute ("category", "colour", "pattern") in both `truth` and `vocabulary`: is it right?

    Rule: right iff the FIRST value the caption mentions is the true one (product texts name the
    garment's own colour before its trim's: "Cotton jacket in blue. ... Contrast trim in grey.").
    For "pattern" it is also wrong if any other pattern is mentioned anywhere. No mention is wrong.
    """
    flags = {}
    for attr in CAPTION_ATTRIBUTES:
        if attr not in truth or attr not in vocabulary:
            continue
        mentions = find_mentions(caption, vocabulary[attr])
        if attr == "pattern":
            flags[attr] = mentions == [truth[attr]]
        else:
            flags[attr] = bool(mentions) and mentions[0] == truth[attr]
    return flags


def words(text: str) -> list[str]:
    """Lower-case alphanumeric tokens; inner hyphens and apostrophes kept ("t-shirt", "men's")."""
    return _WORD.findall(text.lower())


def has_loop(caption: str, n: int = 3) -> bool:
    """True if a word is immediately repeated ("knit knit") or some word n-gram occurs twice."""
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    w = words(caption)
    if any(a == b for a, b in zip(w, w[1:])):
        return True
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) < len(grams)


def caption_attribute_scores(predictions: Mapping[str, str], truths: Mapping[str, Mapping[str, str]],
                             vocabulary: Vocabulary) -> dict[str, float]:
    """Share of predicted captions naming the true category / colour / pattern, and share that loop.

    predictions: id -> generated caption; truths: id -> {attribute: true value}, same ids.
    Keys: "category", "colour", "pattern" (each over the captions whose truth and the vocabulary
    have it; left out if none do) and "loops"; all in [0, 1].
    """
    if set(predictions) != set(truths):
        missing, extra = sorted(set(truths) - set(predictions)), sorted(set(predictions) - set(truths))
        raise ValueError(f"predictions and truths have different ids ({len(missing)} without a prediction, "
                         f"{len(extra)} without a truth, e.g. {(missing or extra)[0]!r})")
    if not predictions:
        raise ValueError("no predictions to score")
    right: dict[str, list[bool]] = {a: [] for a in CAPTION_ATTRIBUTES}
    for key, caption in predictions.items():
        for attr, ok in caption_attribute_flags(caption, truths[key], vocabulary).items():
            right[attr].append(ok)
    scores = {attr: float(np.mean(oks)) for attr, oks in right.items() if oks}
    scores["loops"] = float(np.mean([has_loop(c) for c in predictions.values()]))
    return scores


@dataclass(frozen=True)
class LinearHead:
    """One attribute's multinomial logistic regression on standardised features."""

    classes: np.ndarray  # (C,) str, the label values seen in training, sorted
    weight: np.ndarray  # (D, C) float32
    bias: np.ndarray  # (C,) float32


class AttributeProbe:
    """Linear classifiers, one per attribute, on fixed feature vectors (a linear probe)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, heads: dict[str, LinearHead]):
        self.mean = mean  # (D,) training feature mean
        self.std = std  # (D,) training feature std (1 where constant)
        self.heads = heads

    @classmethod
    def fit(cls, features: np.ndarray, labels: Mapping[str, Sequence[str]], *, steps: int = 100,
            l2: float = 1e-3, seed: int = 0) -> AttributeProbe:
        """Full-batch L-BFGS on mean cross-entropy + l2/2 * |W|^2, on CPU; same inputs -> same probe."""
        x = _check_features(features)
        if l2 < 0 or steps < 1:
            raise ValueError(f"need l2 >= 0 and steps >= 1 (got l2={l2}, steps={steps})")
        mean = x.mean(0)  # (D,)
        std = x.std(0)  # (D,)
        std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        xt = torch.from_numpy((x - mean) / std)  # (N, D)
        torch.manual_seed(seed)
        heads = {}
        for attr, values in labels.items():
            y = np.asarray(values, dtype=str)  # (N,)
            if y.shape != (len(x),):
                raise ValueError(f"labels['{attr}'] has {y.size} values for {len(x)} feature rows")
            classes, index = np.unique(y, return_inverse=True)  # (C,), (N,)
            target = torch.from_numpy(index.astype(np.int64))  # (N,)
            weight = torch.zeros(x.shape[1], len(classes), requires_grad=True)  # (D, C)
            bias = torch.zeros(len(classes), requires_grad=True)  # (C,)
            opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20,
                                    line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(xt @ weight + bias, target)  # (N, C) logits
                loss = loss + 0.5 * l2 * (weight ** 2).sum()
                loss.backward()
                return loss

            opt.step(closure)
            heads[attr] = LinearHead(classes, weight.detach().numpy().copy(), bias.detach().numpy().copy())
        return cls(mean.astype(np.float32), std, heads)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """attribute -> (N,) str array of predicted values."""
        z = (_check_features(features) - self.mean) / self.std  # (N, D)
        return {attr: h.classes[np.argmax(z @ h.weight + h.bias, axis=1)]  # (N,)
                for attr, h in self.heads.items()}

    def accuracy(self, features: np.ndarray, labels: Mapping[str, Sequence[str]]) -> dict[str, float]:
        """attribute -> share predicted right; a value never seen in training is always wrong."""
        unknown = sorted(set(labels) - set(self.heads))
        if unknown:
            raise ValueError(f"no probe for attribute '{unknown[0]}' (trained: {', '.join(sorted(self.heads))})")
        predicted = self.predict(features)
        scores = {}
        for attr, values in labels.items():
            y = np.asarray(values, dtype=str)  # (N,)
            if y.shape != predicted[attr].shape:
                raise ValueError(f"labels['{attr}'] has {y.size} values for {len(predicted[attr])} feature rows")
            scores[attr] = float(np.mean(predicted[attr] == y))
        return scores


def _check_features(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be a non-empty (N, D) array (got shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN or infinite values")
    return x


def psnr_outside_mask(generated: np.ndarray, real: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) PSNR in dB (MAX 255) of uint8 (N, H, W, 3) images over pixels where `mask` (N, H, W) is False.

    The mask marks the inpainted region; inf where the rest is identical.
    """
    generated, real, mask = np.asarray(generated), np.asarray(real), np.asarray(mask, dtype=bool)
    if generated.shape != real.shape or generated.ndim != 4 or generated.shape[-1] != 3:
        raise ValueError(f"generated and real must both be (N, H, W, 3) (got {generated.shape} and {real.shape})")
    if mask.shape != generated.shape[:3]:
        raise ValueError(f"mask must be (N, H, W) = {generated.shape[:3]} (got {mask.shape})")
    outside = ~mask  # (N, H, W)
    counts = outside.sum((1, 2))  # (N,)
    if (counts == 0).any():
        raise ValueError(f"mask covers all of image {int(np.argmax(counts == 0))}: no pixels outside it")
    diff = generated.astype(np.float64) - real.astype(np.float64)  # (N, H, W, 3)
    mse = (diff ** 2 * outside[..., None]).sum((1, 2, 3)) / (3 * counts)  # (N,)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)  # (N,) inf where mse == 0


def garment_crop(image: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the masked pixels on white, cropped to the mask's box padded to a square."""
    image, mask = np.asarray(image), np.asarray(mask, dtype=bool)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3) (got {image.dtype} {image.shape})")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be (H, W) = {image.shape[:2]} (got {mask.shape})")
    if not mask.any():
        raise ValueError("mask is empty: no garment to crop")
    if size < 1:
        raise ValueError(f"size must be >= 1 (got {size})")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    garment = np.where(mask[..., None], image, 255)[top:bottom, left:right]  # (h, w, 3)
    h, w = garment.shape[:2]
    side = max(h, w)
    square = np.full((side, side, 3), 255, dtype=np.uint8)  # (side, side, 3)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = garment
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BICUBIC))  # (size, size, 3)


def foreground_histogram(images: np.ndarray, bins: int = 6, threshold: float = 60.0) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, bins**3) share of foreground pixels in each RGB bin.

    Background = the per-channel median of a border ring (min(H, W) // 16 px wide); foreground = pixels
    farther than `threshold` from it (all pixels when none is). What a colour probe reads.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    border = max(1, min(h, w) // 16)
    ring = np.ones((h, w), bool)
    ring[border:h - border, border:w - border] = False
    out = np.zeros((n, bins ** 3), np.float32)
    for i, image in enumerate(images.astype(np.float64)):
        background = np.median(image[ring], axis=0)  # (3,)
        fg = np.linalg.norm(image - background, axis=-1) > threshold  # (H, W)
        px = image[fg] if fg.any() else image.reshape(-1, 3)  # (P, 3)
        idx = np.clip((px / 256.0 * bins).astype(np.int64), 0, bins - 1)  # (P, 3)
        counts = np.bincount((idx[:, 0] * bins + idx[:, 1]) * bins + idx[:, 2], minlength=bins ** 3)
        out[i] = counts / counts.sum()
    return out
