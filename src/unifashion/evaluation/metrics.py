"""Pure metric functions: numpy (or plain Python) in, numbers out. No model is run here.

- `recall_at_k`: retrieval recall from a score matrix, ties broken pessimistically.
- `caption_scores`: BLEU-4 / METEOR / ROUGE-L / CIDEr from pycocoevalcap, predictions as `res`.
"""
from __future__ import annotations

import shutil
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from unifashion.errors import UnifashionError

__all__ = ["positive_mask", "pessimistic_ranks", "recall_at_k", "caption_scores"]


def positive_mask(positives, shape: tuple[int, int]) -> np.ndarray:
    """A (Q, G) bool mask from either a bool mask or a list of Q sets of gallery indices."""
    q, g = shape
    if isinstance(positives, np.ndarray) and positives.dtype == bool:
        if positives.shape != (q, g):
            raise ValueError(f"positives mask has shape {positives.shape}, scores have shape {(q, g)}")
        return positives
    if len(positives) != q:
        raise ValueError(f"positives has {len(positives)} entries, scores have {q} query rows")
    mask = np.zeros((q, g), dtype=bool)
    for i, pos in enumerate(positives):
        idx = np.fromiter((int(j) for j in pos), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= g):
            raise ValueError(f"query {i}: positive index out of range [0, {g})")
        mask[i, idx] = True
    return mask


def pessimistic_ranks(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(Q,) 0-based rank of each query's best positive: the number of NON-positives scoring >= it.

    Ties between a positive and a negative are broken against the query (pessimistic), so a
    constant score matrix gives no hits at K < number of negatives + 1. Other positives never count.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (Q, G), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    has_pos = mask.any(axis=1)
    if not has_pos.all():
        raise ValueError(f"query {int(np.argmin(has_pos))} has no positive in the gallery")
    best = np.where(mask, scores, -np.inf).max(axis=1)  # (Q,)
    return ((scores >= best[:, None]) & ~mask).sum(axis=1)


def recall_at_k(scores: np.ndarray, positives, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@K in percent: a query is a hit at K when any positive is within its top K.

    scores: (Q, G), higher is better. positives: a (Q, G) bool mask or a list of Q sets of gallery
    indices. Ties with negatives are broken pessimistically (see `pessimistic_ranks`).
    Raises ValueError when a query has no positive.
    """
    scores = np.asarray(scores)
    mask = positive_mask(positives, scores.shape)
    ranks = pessimistic_ranks(scores, mask)
    return {int(k): 100.0 * float(np.mean(ranks < k)) for k in ks}


def _check_captions(predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> None:
    missing = set(references) - set(predictions)
    extra = set(predictions) - set(references)
    if missing or extra:
        raise ValueError(
            f"prediction and reference ids differ: {len(missing)} ids without a prediction "
            f"(e.g. {sorted(map(str, missing))[:3]}), {len(extra)} predictions without references "
            f"(e.g. {sorted(map(str, extra))[:3]})")
    if not predictions:
        raise ValueError("no captions to score")
    for key, text in predictions.items():
        if not isinstance(text, str):
            raise ValueError(f"prediction for id {key!r} must be a string, got {type(text).__name__}")
    for key, refs in references.items():
        if isinstance(refs, str):
            raise ValueError(f"references for id {key!r} must be a list of strings, got one string")
        if not refs or any(not isinstance(r, str) or not r.strip() for r in refs):
            raise ValueError(f"references for id {key!r} are missing or contain an empty caption")


def caption_scores(predictions: Mapping[Hashable, str],
                   references: Mapping[Hashable, Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-4, METEOR, ROUGE-L and CIDEr (each x100, as papers report them).

    pycocoevalcap with its PTB tokenizer, every caption in one call (one tokenizer JVM, one METEOR
    JVM). Predictions are `res`, references are `gts` (the official code swaps them); captions are
    not truncated. Returns {"bleu4", "meteor", "rouge_l", "cider"}.
    """
    _check_captions(predictions, references)
    if shutil.which("java") is None:
        raise UnifashionError("`java` was not found on PATH: pycocoevalcap's PTB tokenizer and METEOR "
                              "need a Java runtime (e.g. apt-get install default-jre-headless)")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = list(references)
    keys = {k: i for i, k in enumerate(ids)}  # plain ints for pycocoevalcap
    merged = {("res", keys[k]): [{"caption": predictions[k]}] for k in ids}
    merged.update({("gts", keys[k]): [{"caption": r} for r in references[k]] for k in ids})
    tokens = PTBTokenizer().tokenize(merged)  # one JVM for predictions and references together
    res = {i: tokens[("res", i)] for i in range(len(ids))}
    gts = {i: tokens[("gts", i)] for i in range(len(ids))}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor, _ = Meteor().compute_score(gts, res)
    # an empty prediction (nothing left after tokenisation: an untrained model's) scores 0; pycocoevalcap's
    # ROUGE-L divides by its length, so it is scored here per caption and averaged, as Rouge does
    rouge_l = Rouge()
    rouge = float(np.mean([rouge_l.calc_score(res[i], gts[i]) if res[i][0].strip() else 0.0 for i in res]))
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu4": 100.0 * float(bleu[3]), "meteor": 100.0 * float(meteor),
            "rouge_l": 100.0 * float(rouge), "cider": 100.0 * float(cider)}
