"""Benchmark protocols on top of score matrices (DESIGN.md, "Evaluation protocols").

All functions take precomputed scores (numpy) and return plain dicts of percentages; no model here.
Naming: "i2t" is an IMAGE query ranked against TEXT candidates, "t2i" a TEXT query against IMAGES
(the official code swaps the names). `sim[i, t]` is the score of image i with text t; image i and
text i describe the same item.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from unifashion.evaluation.metrics import pessimistic_ranks, recall_at_k

__all__ = ["cmr_sample100", "sample_negatives", "cmr_full", "fashioniq_recall", "fashioniq_summary",
           "query_text", "combine_scores"]

CMR_KS = (1, 5, 10)


def _check_sim(sim: np.ndarray, product_ids) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(sim, dtype=np.float64)
    product_ids = np.asarray(product_ids)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be square (N_images, N_texts) with item i on both axes, got {sim.shape}")
    if product_ids.shape != (sim.shape[0],):
        raise ValueError(f"product_ids has shape {product_ids.shape}, expected ({sim.shape[0]},)")
    if not np.isfinite(sim).all():
        raise ValueError("sim contains NaN or infinity")
    return sim, product_ids


def _with_mean(i2t: dict[int, float], t2i: dict[int, float]) -> dict:
    return {"i2t": i2t, "t2i": t2i, "mean": float(np.mean(list(i2t.values()) + list(t2i.values())))}


def sample_negatives(rng: np.random.Generator, query: int, product_ids: np.ndarray, subcategories: np.ndarray,
                     n_negatives: int, groups: Mapping | None = None) -> np.ndarray:
    """Up to `n_negatives` distinct random items of the query's subcategory with a different product id.

    Fewer are returned when fewer exist. `groups` ({subcategory: item indices}) is a precomputed speed-up.
    """
    pool = groups[subcategories[query]] if groups is not None else np.flatnonzero(subcategories == subcategories[query])
    pool = pool[product_ids[pool] != product_ids[query]]
    if pool.size <= n_negatives:
        return pool.copy()
    return rng.choice(pool, size=n_negatives, replace=False)


def cmr_sample100(sim: np.ndarray, product_ids, subcategories, n_queries: int = 1000, n_negatives: int = 100,
                  seeds: Sequence[int] = (0, 1, 2, 3, 4), ks: Sequence[int] = CMR_KS) -> dict:
    """FashionBERT / KaleidoBERT / FAME-ViL sample-100 cross-modal retrieval.

    Per seed: min(n_queries, N) distinct random query items; for each query and each direction
    independently, candidates = its own counterpart (same index) + `n_negatives` random items of the
    same subcategory with a different product id (all of them when fewer exist); the positive's
    pessimistic rank among the candidates gives R@K. R@K is averaged over seeds; "mean" is the mean
    of the 2 x len(ks) numbers.

    Returns {"i2t": {k: r}, "t2i": {k: r}, "mean": m, "short_of_negatives": number of (seed,
    direction, query) draws that had fewer than n_negatives negatives, "min_negatives": the fewest
    negatives any draw had}. A warning is emitted when short_of_negatives > 0.
    """
    sim, product_ids = _check_sim(sim, product_ids)
    subcategories = np.asarray(subcategories)
    n = sim.shape[0]
    if subcategories.shape != (n,):
        raise ValueError(f"subcategories has shape {subcategories.shape}, expected ({n},)")
    if not seeds:
        raise ValueError("seeds is empty")
    groups = {c: np.flatnonzero(subcategories == c) for c in np.unique(subcategories)}
    per_seed = {"i2t": [], "t2i": []}
    short, fewest = 0, n_negatives
    for seed in seeds:
        rng = np.random.default_rng(seed)
        queries = rng.choice(n, size=min(n_queries, n), replace=False)
        ranks = {"i2t": [], "t2i": []}
        for q in queries:
            for direction in ("i2t", "t2i"):
                neg = sample_negatives(rng, q, product_ids, subcategories, n_negatives, groups)
                short += neg.size < n_negatives
                fewest = min(fewest, neg.size)
                # i2t: image q against texts; t2i: text q against images
                row = sim[q, neg] if direction == "i2t" else sim[neg, q]
                pos = sim[q, q]
                ranks[direction].append(int(np.sum(row >= pos)))  # pessimistic ties
        for direction in ("i2t", "t2i"):
            r = np.asarray(ranks[direction])
            per_seed[direction].append([100.0 * float(np.mean(r < k)) for k in ks])
    if short:
        warnings.warn(f"cmr_sample100: {short} query draws had fewer than {n_negatives} same-subcategory "
                      f"negatives with a different product id (fewest: {fewest}); all available were used",
                      stacklevel=2)
    out = _with_mean(*({int(k): float(v) for k, v in zip(ks, np.mean(per_seed[d], axis=0))}
                       for d in ("i2t", "t2i")))
    out.update(short_of_negatives=int(short), min_negatives=int(fewest))
    return out


def cmr_full(sim: np.ndarray, product_ids, ks: Sequence[int] = CMR_KS, chunk: int = 1024) -> dict:
    """Every query ranked against the whole set; a hit is any candidate with the query's product id.

    Returns {"i2t": {k: r}, "t2i": {k: r}, "mean": m}; ties pessimistic. Works in row chunks so
    the (N, N) positive mask is never built whole.
    """
    sim, product_ids = _check_sim(sim, product_ids)
    n = sim.shape[0]
    ranks = {"i2t": np.empty(n, np.int64), "t2i": np.empty(n, np.int64)}
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        mask = product_ids[rows, None] == product_ids[None, :]  # (chunk, N)
        ranks["i2t"][rows] = pessimistic_ranks(sim[rows], mask)
        ranks["t2i"][rows] = pessimistic_ranks(sim[:, rows].T, mask)
    return _with_mean(*({int(k): 100.0 * float(np.mean(ranks[d] < k)) for k in ks} for d in ("i2t", "t2i")))


def fashioniq_recall(scores: np.ndarray, target_index, ks: Sequence[int] = (10, 50)) -> dict[int, float]:
    """Fashion-IQ R@K for one category: scores (Q, G) over that category's validation gallery.

    The reference image stays in the gallery (CLIP4Cir / SPRC validation); ties pessimistic.
    """
    scores = np.asarray(scores)
    target_index = np.asarray(target_index, dtype=np.int64)
    if target_index.shape != (scores.shape[0],):
        raise ValueError(f"target_index has shape {target_index.shape}, expected ({scores.shape[0]},)")
    return recall_at_k(scores, [{int(t)} for t in target_index], ks)


def fashioniq_summary(per_category: Mapping[str, Mapping[int, float]]) -> dict[str, float]:
    """{"<cat>.r10", "<cat>.r50" per category, "avg.r10", "avg.r50", "avg.score" = (avg.r10 + avg.r50) / 2}."""
    if not per_category:
        raise ValueError("per_category is empty")
    out: dict[str, float] = {}
    for cat, r in per_category.items():
        out[f"{cat}.r10"], out[f"{cat}.r50"] = float(r[10]), float(r[50])
    out["avg.r10"] = float(np.mean([r[10] for r in per_category.values()]))
    out["avg.r50"] = float(np.mean([r[50] for r in per_category.values()]))
    out["avg.score"] = (out["avg.r10"] + out["avg.r50"]) / 2
    return out


def query_text(c1: str, c2: str) -> str:
    """The Fashion-IQ query text from two relative captions (CLIP4Cir / SPRC validation form)."""
    return f"{c1.strip('.?, ').capitalize()} and {c2.strip('.?, ')}"


def combine_scores(query_image_scores: np.ndarray, query_caption_scores: np.ndarray,
                   weight: float = 1.0) -> np.ndarray:
    """Caption-assisted retrieval scores: query·image + weight * query·caption (paper Table 4).

    Table 4's variants: image only = `query_image_scores`; caption only = `query_caption_scores`;
    both = `combine_scores(image, caption)`.
    """
    a = np.asarray(query_image_scores, dtype=np.float64)
    b = np.asarray(query_caption_scores, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image scores {a.shape} and caption scores {b.shape} differ in shape")
    return a + weight * b
