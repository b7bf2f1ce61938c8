import shutil

import numpy as np
import pytest

from unifashion.errors import UnifashionError
from unifashion.evaluation.metrics import caption_scores, recall_at_k


def test_recall_hand_computed():
    scores = np.array([[0.9, 0.1, 0.5, 0.3],    # positive 0 ranked first
                       [0.9, 0.1, 0.5, 0.3],    # positive 2 ranked second
                       [0.9, 0.1, 0.5, 0.3]])   # positive 1 ranked last (4th)
    r = recall_at_k(scores, [{0}, {2}, {1}], ks=(1, 2, 3, 4))
    assert r == pytest.approx({1: 100 / 3, 2: 200 / 3, 3: 200 / 3, 4: 100.0})


def test_recall_any_positive_counts_and_mask_equals_sets():
    scores = np.array([[0.1, 0.9, 0.5, 0.3]])
    assert recall_at_k(scores, [{0, 1}], ks=(1,)) == {1: 100.0}  # positive 1 is top
    assert recall_at_k(scores, [{0, 3}], ks=(1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 100.0}
    mask = np.array([[True, False, False, True]])
    assert recall_at_k(scores, mask, ks=(1, 2, 3)) == recall_at_k(scores, [{0, 3}], ks=(1, 2, 3))


def test_recall_ties_are_pessimistic():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert recall_at_k(scores, [{1}], ks=(1, 2)) == {1: 0.0, 2: 100.0}
    assert recall_at_k(scores, [{0}], ks=(1, 2)) == {1: 0.0, 2: 100.0}  # regardless of order
    # ties among positives do not count against the query
    assert recall_at_k(scores, [{0, 1}], ks=(1,)) == {1: 100.0}
    assert recall_at_k(np.zeros((2, 5)), [{0}, {4}], ks=(1, 5)) == {1: 0.0, 5: 100.0}


def test_recall_errors():
    with pytest.raises(ValueError, match="no positive"):
        recall_at_k(np.zeros((2, 3)), [{0}, set()])
    with pytest.raises(ValueError, match="entries"):
        recall_at_k(np.zeros((2, 3)), [{0}])
    with pytest.raises(ValueError, match="out of range"):
        recall_at_k(np.zeros((1, 3)), [{3}])
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(np.array([[np.nan, 0.0]]), [{0}])


def test_caption_input_errors():
    with pytest.raises(ValueError, match="ids differ"):
        caption_scores({1: "a dress"}, {2: ["a dress"]})
    with pytest.raises(ValueError, match="must be a string"):
        caption_scores({1: None}, {1: ["a dress"]})
    with pytest.raises(ValueError, match="references"):
        caption_scores({1: "a dress"}, {1: []})
    with pytest.raises(ValueError, match="one string"):
        caption_scores({1: "a dress"}, {1: "a dress"})


def test_empty_predictions_score_zero():
    """An untrained model's empty or punctuation-only caption is a (bad) prediction, not an error: it
    matches nothing, and the corpus scores are those of the other captions diluted by it."""
    refs = {1: ["a red dress"], 2: ["a red dress"], 3: ["blue denim jacket"]}
    s = caption_scores({1: "  ", 2: "『 『 !", 3: "blue denim jacket"}, refs)
    assert s["rouge_l"] == pytest.approx(100.0 / 3, abs=1e-6)  # per-caption ROUGE-L 0, 0, 100
    assert s["bleu4"] < 1.0  # 3 hypothesis tokens against 9 reference tokens: only 1- to 3-gram matches
    assert 0.0 < s["meteor"] < 50.0 and s["cider"] > 0.0


def test_caption_missing_java_is_named(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UnifashionError, match="java"):
        caption_scores({1: "a dress"}, {1: ["a dress"]})


def test_caption_scores_hand_computed():
    # Predictions equal (after PTB tokenisation: lower case, punctuation dropped) one reference each.
    # Item "a" has a second, unrelated reference, so if predictions were passed as `gts` BLEU would
    # see two hypotheses and fail: this pins predictions = res, references = gts.
    preds = {"a": "A Red silk dress with long sleeves.", "b": "blue denim jacket with metal buttons"}
    refs = {"a": ["a red silk dress with long sleeves", "crimson gown"],
            "b": ["Blue denim jacket with metal buttons!"]}
    s = caption_scores(preds, refs)
    assert set(s) == {"bleu4", "meteor", "rouge_l", "cider"}
    assert s["bleu4"] == pytest.approx(100.0, abs=1e-4)   # every n-gram matches, brevity penalty 1
    assert s["rouge_l"] == pytest.approx(100.0, abs=1e-6)  # max over references
    # CIDEr-D averages over references: item a = 10 * (1 + 0) / 2, item b = 10 -> 7.5 -> x100
    assert s["cider"] == pytest.approx(750.0, abs=1e-3)
    assert 95.0 < s["meteor"] <= 100.0  # exact match, minus METEOR's fragmentation penalty


def test_caption_scores_equal_pycocoevalcaps_own_scorers():
    """Non-trivial captions: our one-call scores equal pycocoevalcap's scorers called directly."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    preds = {"a": "a red dress with long sleeves", "b": "black leather jacket, zip front",
             "c": "white cotton shirt with a classic collar", "d": "blue jeans"}
    refs = {"a": ["red silk dress with long sleeves and a v-neck", "a long-sleeved red dress"],
            "b": ["black leather biker jacket with a zip front"],
            "c": ["white shirt in cotton with a classic collar and short sleeves"],
            "d": ["slim blue denim jeans with five pockets"]}
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    direct = {"bleu4": Bleu(4).compute_score(gts, res, verbose=0)[0][3], "meteor": Meteor().compute_score(gts, res)[0],
              "rouge_l": Rouge().compute_score(gts, res)[0], "cider": Cider().compute_score(gts, res)[0]}
    ours = caption_scores(preds, refs)
    for key, value in direct.items():
        assert ours[key] == pytest.approx(100.0 * value, abs=1e-6), key
    assert 0 < ours["bleu4"] < 100 and 0 < ours["cider"]
