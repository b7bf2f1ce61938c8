"""Attribute metrics: caption attribute scores, loops, the linear probe, PSNR outside a mask, crops."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from unifashion.data.formats import catalog as catalog_format
from unifashion.data.synthetic import texts
from unifashion.data.synthetic.products import CatalogConfig, build_catalog
from unifashion.errors import DataError
from unifashion.evaluation.attributes import (AttributeProbe, caption_attribute_flags, caption_attribute_scores,
                                              find_mentions, garment_crop, has_loop, psnr_outside_mask)

VOCAB = texts.vocabulary()
TRUTH = {"category": "outerwear", "colour": "blue", "pattern": "solid"}


def test_vocabulary_shape():
    assert "tee" in VOCAB["category"]["tops"] and "shopper bag" in VOCAB["category"]["bags"]
    assert VOCAB["pattern"]["stripes"] == ["stripe", "striped", "stripes"]
    assert VOCAB["colour"]["light blue"] == ["light blue"]
    assert all(p and p == p.lower() for values in VOCAB.values() for ps in values.values() for p in ps)


def test_find_mentions_longest_phrase_first():
    assert find_mentions("A LIGHT BLUE tee with blue trim", VOCAB["colour"]) == ["light blue", "blue"]
    assert find_mentions("light blue tee", VOCAB["colour"]) == ["light blue"]
    assert find_mentions("a t-shirt", VOCAB["subcategory"]) == ["t-shirt"]
    assert find_mentions("a button-up shirt", VOCAB["subcategory"]) == ["shirt"]
    assert find_mentions("polka dot print", VOCAB["pattern"]) == ["dots"]  # hyphen matches a space
    assert find_mentions("redder bluest", VOCAB["colour"]) == []  # whole words only


def test_caption_flags():
    good = "Cotton jacket in blue. Solid colour throughout. Contrast trim in grey."
    assert caption_attribute_flags(good, TRUTH, VOCAB) == {"category": True, "colour": True, "pattern": True}
    wrong_colour = "Cotton jacket in red. Solid colour throughout. Contrast trim in blue."
    assert caption_attribute_flags(wrong_colour, TRUTH, VOCAB)["colour"] is False
    light = "Cotton jacket in light blue. Solid colour throughout."
    assert caption_attribute_flags(light, TRUTH, VOCAB)["colour"] is False
    assert caption_attribute_flags(light, {**TRUTH, "colour": "light blue"}, VOCAB)["colour"] is True
    no_pattern = "Cotton jacket in blue. Contrast trim in grey."
    assert caption_attribute_flags(no_pattern, TRUTH, VOCAB)["pattern"] is False
    two_patterns = "Solid cotton jacket in blue. Allover stripes."
    assert caption_attribute_flags(two_patterns, TRUTH, VOCAB)["pattern"] is False
    assert caption_attribute_flags("a blue jumper", TRUTH, VOCAB)["category"] is False
    assert set(caption_attribute_flags(good, {"colour": "blue"}, VOCAB)) == {"colour"}


def test_has_loop():
    assert has_loop("cotton - blend knit knit knit knit blue")
    assert has_loop("a blue shirt with a blue shirt with")  # repeated trigram
    assert not has_loop("Short sleeve cotton t-shirt in red. Solid colour throughout. Crew neckline. "
                        "Regular fit. Contrast trim in grey. Signature logo at back.")


def test_caption_attribute_scores():
    preds = {"a": "Cotton jacket in blue. Solid colour throughout.", "b": "jacket in red red red"}
    truths = {"a": TRUTH, "b": TRUTH}
    assert caption_attribute_scores(preds, truths, VOCAB) == {
        "category": 1.0, "colour": 0.5, "pattern": 0.5, "loops": 0.5}
    with pytest.raises(ValueError, match="different ids"):
        caption_attribute_scores({"a": "x"}, truths, VOCAB)


def test_world_reference_texts_score_high():
    products = build_catalog(CatalogConfig(products=200)).products
    for style in ("description", "detailed"):
        preds = {str(p.product_id): getattr(p, style) for p in products}
        truths = {str(p.product_id): {**p.spec.as_dict(), "category": p.category} for p in products}
        scores = caption_attribute_scores(preds, truths, VOCAB)
        assert scores["category"] >= 0.97 and scores["colour"] >= 0.97, (style, scores)
        assert scores["pattern"] >= 0.97 and scores["loops"] == 0.0, (style, scores)
    assert not any(has_loop(p.title) for p in products)


def test_vocabulary_round_trip(tmp_path):
    assert catalog_format.load_vocabulary(tmp_path) is None
    (tmp_path / catalog_format.VOCABULARY_FILE).write_text(json.dumps(VOCAB, indent=1, sort_keys=True))
    assert catalog_format.load_vocabulary(tmp_path) == VOCAB
    for bad in ("{not json", json.dumps({"colour": ["red"]}), json.dumps({"colour": {"red": [1]}})):
        (tmp_path / catalog_format.VOCABULARY_FILE).write_text(bad)
        with pytest.raises(DataError, match="vocabulary.json") as e:
            catalog_format.load_vocabulary(tmp_path)
        assert "\n" not in str(e.value)


def _clusters(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = {"colour": rng.normal(0, 1, (4, d)), "pattern": rng.normal(0, 1, (3, d))}
    colour, pattern = rng.integers(4, size=n), rng.integers(3, size=n)
    x = 3 * centres["colour"][colour] + 3 * centres["pattern"][pattern] + rng.normal(0, 1, (n, d))  # (n, d)
    names = np.array(["red", "blue", "green", "grey"])
    return x, {"colour": names[colour], "pattern": np.array(["solid", "dots", "checks"])[pattern]}


def test_probe_separable_clusters():
    x, y = _clusters(600, 32, seed=1)
    probe = AttributeProbe.fit(x[:400], {k: v[:400] for k, v in y.items()}, l2=1e-2)
    assert min(probe.accuracy(x[:400], {k: v[:400] for k, v in y.items()}).values()) >= 0.95
    assert min(probe.accuracy(x[400:], {k: v[400:] for k, v in y.items()}).values()) >= 0.95
    again = AttributeProbe.fit(x[:400], {k: v[:400] for k, v in y.items()}, l2=1e-2)
    np.testing.assert_array_equal(probe.heads["colour"].weight, again.heads["colour"].weight)
    unseen = {"colour": np.full(200, "purple")}
    assert probe.accuracy(x[400:], unseen) == {"colour": 0.0}
    assert set(probe.predict(x[400:])["colour"]) <= {"red", "blue", "green", "grey"}


def test_probe_fast_at_realistic_size():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2500, 1552)).astype(np.float32)
    y = {a: rng.choice([f"v{i}" for i in range(c)], 2500) for a, c in (("category", 6), ("colour", 16),
                                                                     ("pattern", 6))}
    start = time.perf_counter()
    AttributeProbe.fit(x, y, l2=1e-3)
    assert time.perf_counter() - start < 10


def test_psnr_outside_mask():
    real = np.zeros((3, 2, 2, 3), dtype=np.uint8)
    mask = np.zeros((3, 2, 2), dtype=bool)
    mask[:, 0, 0] = True  # 3 pixels outside, 9 values
    gen = real.copy()
    gen[0] = 255  # difference 255 everywhere -> MSE 255^2 -> 0 dB
    gen[1, 0, 0] = 200  # inside the mask only -> identical outside -> inf
    gen[2, 1, 1, 0] = 3  # one value differs by 3: MSE 9 / 9 = 1 -> 10 log10(255^2)
    psnr = psnr_outside_mask(gen, real, mask)
    assert psnr[0] == pytest.approx(0.0)
    assert math.isinf(psnr[1])
    assert psnr[2] == pytest.approx(20 * math.log10(255))
    with pytest.raises(ValueError, match="mask covers all"):
        psnr_outside_mask(gen, real, np.ones((3, 2, 2), dtype=bool))
    with pytest.raises(ValueError):
        psnr_outside_mask(gen[:2], real, mask)


def test_garment_crop_whitens_outside():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[...] = (10, 20, 30)
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 3:5] = True  # a 4 x 2 box
    mask[2, 3] = False  # a hole inside the box
    crop = garment_crop(image, mask, 4)
    assert crop.shape == (4, 4, 3) and crop.dtype == np.uint8
    expected = np.full((4, 4, 3), 255, dtype=np.uint8)
    expected[:, 1:3] = (10, 20, 30)  # centred horizontally
    expected[0, 1] = 255
    np.testing.assert_array_equal(crop, expected)
    assert garment_crop(image, mask, 16).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="empty"):
        garment_crop(image, np.zeros((8, 8), dtype=bool), 4)
