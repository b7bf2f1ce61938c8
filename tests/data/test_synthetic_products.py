"""The synthetic catalog: uniqueness, determinism, compositional hold-out, triplets and texts."""
import collections

import numpy as np
import pytest

from unifashion.data.synthetic import texts
from unifashion.data.synthetic.products import CatalogConfig, build_catalog, changes_between
from unifashion.data.synthetic.taxonomy import ATTRIBUTES_BY_SUBCATEGORY, CATEGORIES, PATTERNS, GarmentSpec
from unifashion.data.vocabulary import COLOURS


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(CatalogConfig(products=600, seed=3, holdout=0.2))


def test_every_product_has_a_unique_attribute_combination(catalog):
    specs = [p.spec for p in catalog.products]
    assert len(specs) == 600
    assert len(set(specs)) == len(specs)
    ids = [p.product_id for p in catalog.products]
    assert len(set(ids)) == len(ids)


def test_taxonomy_covers_the_issue_and_attributes_are_valid(catalog):
    assert set(CATEGORIES) == {"tops", "bottoms", "dresses", "outerwear", "footwear", "bags"}
    assert len(COLOURS) >= 12
    assert set(PATTERNS) == {"solid", "stripes", "dots", "checks", "floral", "graphic print"}
    seen_categories = collections.Counter(p.category for p in catalog.products)
    assert set(seen_categories) == set(CATEGORIES)
    for p in catalog.products:
        allowed = ATTRIBUTES_BY_SUBCATEGORY[p.subcategory]
        attrs = p.spec.as_dict()
        assert set(attrs) == set(allowed)
        assert all(attrs[k] in allowed[k] for k in attrs)
        assert attrs["trim"] != attrs["colour"]
        assert p.split in ("train", "val", "test")
        assert 1 <= p.n_views <= 4


def test_same_seed_same_catalog_other_seed_different():
    a = build_catalog(CatalogConfig(products=200, seed=11))
    b = build_catalog(CatalogConfig(products=200, seed=11))
    c = build_catalog(CatalogConfig(products=200, seed=12))
    assert a == b
    assert [p.spec for p in a.products] != [p.spec for p in c.products]


def test_holdout_combinations_never_reach_train(catalog):
    held = set(catalog.heldout_combinations)
    assert len(held) > 0
    for p in catalog.products:
        combo = (p.category, p.spec.get("colour"), p.spec.get("pattern"))
        if combo in held:
            assert p.split in ("val", "test")
    train_combos = {(p.category, p.spec.get("colour"), p.spec.get("pattern")) for p in catalog.products if p.split == "train"}
    assert not train_combos & held
    # and some held-out combinations are actually present in val/test
    eval_combos = {(p.category, p.spec.get("colour"), p.spec.get("pattern")) for p in catalog.products if p.split != "train"}
    assert eval_combos & held


def test_no_holdout_means_no_heldout_combinations():
    assert build_catalog(CatalogConfig(products=100, seed=0, holdout=0.0)).heldout_combinations == ()


def test_triplets_differ_in_one_to_three_attributes_within_a_split(catalog):
    by_id = {p.product_id: p for p in catalog.products}
    assert len(catalog.triplets) > 100
    n_changes = collections.Counter()
    for t in catalog.triplets:
        ref, tgt = by_id[t.reference], by_id[t.target]
        assert ref.split == tgt.split == t.split
        changes = changes_between(ref.spec, tgt.spec)
        assert tuple(changes) == t.changes
        assert 1 <= len(changes) <= 3
        n_changes[len(changes)] += 1
        assert len(t.captions) == 2 and all(c.strip() for c in t.captions)
    assert set(n_changes) == {1, 2, 3}
    assert {t.fashioniq_category for t in catalog.triplets} >= {"dress", "shirt", "toptee"}


def test_relative_caption_names_the_new_colour_and_pattern():
    rng = np.random.default_rng(0)
    for _ in range(50):
        cap = texts.relative_caption([("colour", "blue", "red")], rng)
        assert "red" in cap
        cap = texts.relative_caption([("pattern", "solid", "stripes")], rng)
        assert "stripe" in cap
        cap = texts.relative_caption([("pattern", "dots", "solid")], rng)
        assert any(w in cap for w in ("no pattern", "plain", "solid", "no print"))


def test_texts_mention_colour_and_vary_with_the_rng():
    spec = GarmentSpec("t-shirt", tuple(sorted({"colour": "red", "pattern": "stripes", "sleeve": "short",
                                                "neckline": "v-neck", "fit": "slim", "material": "cotton",
                                                "trim": "white"}.items())))
    rng = np.random.default_rng(0)
    titles = {texts.title(spec, rng) for _ in range(30)}
    descriptions = {texts.description(spec, rng) for _ in range(30)}
    detailed = {texts.detailed(spec, rng) for _ in range(30)}
    for group in (titles, descriptions, detailed):
        assert len(group) > 3  # paraphrased, not a fixed function of the attributes
        assert all("red" in t for t in group)
    assert all(any(w in t for w in ("t-shirt", "tee")) for t in titles)
    assert all("white" in d for d in detailed)  # trim colour named
