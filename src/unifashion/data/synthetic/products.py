"""The synthetic catalog: products, their splits, texts and composed-retrieval triplets.

Products come in families: a base product and variants that differ from it in 1-3 attributes, the
way real catalogs carry colourways and cuts of one design. That makes composed retrieval well posed
(targets one or a few edits away exist) and hard (near neighbours are in the gallery). Every product's
(subcategory, attributes) is unique. Everything is drawn from one seeded rng, in a fixed order, so a
seed fixes the catalog exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unifashion.data.synthetic import texts
from unifashion.data.synthetic.taxonomy import (
    ATTRIBUTES_BY_SUBCATEGORY,
    CATEGORIES,
    FASHIONIQ_CATEGORY,
    GarmentSpec,
)
from unifashion.data.vocabulary import COLOURS

# How often each category is drawn (FashionGen is top-heavy).
CATEGORY_WEIGHTS = {"tops": 0.3, "bottoms": 0.18, "dresses": 0.14, "outerwear": 0.14, "footwear": 0.12, "bags": 0.12}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CatalogConfig:
    products: int = 2000  # number of products (each has 1-4 views)
    seed: int = 0  # fixes everything
    holdout: float = 0.0  # fraction of (category, colour, pattern) combinations seen only in val/test
    val_fraction: float = 0.1  # of products outside the held-out combinations
    test_fraction: float = 0.1
    family_size: tuple[int, int] = (2, 5)  # products per design family, inclusive range
    max_views: int = 4  # views per product drawn from 1..max_views
    triplets_per_reference: int = 2  # composed-retrieval pairs started from each product, at most
    colour_jitter: float = 10.0  # std of per-product RGB jitter around the named colour


@dataclass(frozen=True)
class Product:
    product_id: int
    spec: GarmentSpec
    colour_rgb: tuple[int, int, int]  # jittered named colour
    trim_rgb: tuple[int, int, int]
    split: str
    family: int
    n_views: int
    title: str
    description: str
    detailed: str
    seed: int  # seeds this product's renders

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def subcategory(self) -> str:
        return self.spec.subcategory


@dataclass(frozen=True)
class CatalogTriplet:
    fashioniq_category: str
    split: str
    reference: int  # product id
    target: int
    changes: tuple[tuple[str, str, str], ...]  # (attribute, reference value, target value)
    captions: tuple[str, str]  # two independently worded relative captions


@dataclass(frozen=True)
class Catalog:
    config: CatalogConfig
    products: tuple[Product, ...]
    triplets: tuple[CatalogTriplet, ...]
    heldout_combinations: tuple[tuple[str, str, str], ...]  # (category, colour, pattern)


def _random_spec(subcategory: str, rng: np.random.Generator) -> GarmentSpec:
    options = ATTRIBUTES_BY_SUBCATEGORY[subcategory]
    values = {name: vals[int(rng.integers(len(vals)))] for name, vals in sorted(options.items())}
    while values["trim"] == values["colour"]:
        values["trim"] = options["trim"][int(rng.integers(len(options["trim"])))]
    return GarmentSpec(subcategory, tuple(sorted(values.items())))


def _variant(base: GarmentSpec, rng: np.random.Generator) -> GarmentSpec:
    """`base` with 1-3 attributes changed (never colour to equal trim)."""
    options = ATTRIBUTES_BY_SUBCATEGORY[base.subcategory]
    changeable = [n for n, vals in sorted(options.items()) if len(vals) > 1]
    n_changes = int(rng.integers(1, min(3, len(changeable)) + 1))
    values = base.as_dict()
    for name in rng.choice(changeable, size=n_changes, replace=False):
        others = [v for v in options[name] if v != values[name]]
        values[name] = others[int(rng.integers(len(others)))]
    if values["trim"] == values["colour"]:
        values["trim"] = next(v for v in options["trim"] if v != values["colour"])
    return GarmentSpec(base.subcategory, tuple(sorted(values.items())))


def changes_between(ref: GarmentSpec, tgt: GarmentSpec) -> list[tuple[str, str, str]]:
    """Attribute changes from `ref` to `tgt` (same subcategory), in the order texts mention them."""
    a, b = ref.as_dict(), tgt.as_dict()
    return [(n, a[n], b[n]) for n in sorted(a) if a[n] != b[n]]


def _jitter(rgb: tuple[int, int, int], std: float, rng: np.random.Generator) -> tuple[int, int, int]:
    out = np.clip(np.asarray(rgb, dtype=np.float64) + rng.normal(0.0, std, size=3), 0, 255)  # (3,)
    return tuple(int(round(v)) for v in out)


def build_catalog(config: CatalogConfig) -> Catalog:
    """Draw the whole catalog for `config` (no images: see `world.py`)."""
    if config.products < 1:
        raise ValueError(f"products must be >= 1 (got {config.products})")
    if not 0.0 <= config.holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1) (got {config.holdout})")
    rng = np.random.default_rng(config.seed)
    categories = list(CATEGORY_WEIGHTS)
    weights = np.array([CATEGORY_WEIGHTS[c] for c in categories])  # (6,)

    # 1. design families of unique specs
    seen: set[GarmentSpec] = set()
    specs: list[tuple[GarmentSpec, int]] = []  # (spec, family)
    family = 0
    while len(specs) < config.products:
        category = categories[int(rng.choice(len(categories), p=weights / weights.sum()))]
        subs = CATEGORIES[category]
        base = _random_spec(subs[int(rng.integers(len(subs)))], rng)
        if base in seen:
            continue
        members = [base]
        seen.add(base)
        size = int(rng.integers(config.family_size[0], config.family_size[1] + 1))
        for _ in range(50 * size):  # bounded: a tiny attribute space may not fit `size` variants
            if len(members) >= size or len(specs) + len(members) >= config.products:
                break
            v = _variant(members[int(rng.integers(len(members)))], rng)
            if v not in seen:
                seen.add(v)
                members.append(v)
        specs.extend((m, family) for m in members)
        family += 1

    # 2. compositional hold-out: some (category, colour, pattern) combinations only in val/test
    combos = sorted({(s.category, s.get("colour"), s.get("pattern")) for s, _ in specs})
    n_held = int(round(config.holdout * len(combos)))
    held = {combos[i] for i in rng.choice(len(combos), size=n_held, replace=False)} if n_held else set()

    # 3. splits: families stay together (their triplets need both ends in one split),
    #    except members in a held-out combination, which go to val or test
    family_split = {}
    p_train = 1.0 - config.val_fraction - config.test_fraction
    for f in range(family):
        u = rng.random()
        family_split[f] = "train" if u < p_train else "val" if u < p_train + config.val_fraction else "test"

    products = []
    for i, (spec, fam) in enumerate(specs):
        split = family_split[fam]
        if (spec.category, spec.get("colour"), spec.get("pattern")) in held:
            split = "val" if rng.random() < 0.5 else "test"
        text_rng = np.random.default_rng([config.seed, i, 1])
        products.append(Product(
            product_id=100000 + i,
            spec=spec,
            colour_rgb=_jitter(COLOURS[spec.get("colour")], config.colour_jitter, rng),
            trim_rgb=_jitter(COLOURS[spec.get("trim")], config.colour_jitter / 2, rng),
            split=split,
            family=fam,
            n_views=int(rng.integers(1, config.max_views + 1)),
            title=texts.title(spec, text_rng),
            description=texts.description(spec, text_rng),
            detailed=texts.detailed(spec, text_rng),
            seed=int(rng.integers(2**31 - 1)),
        ))

    # 4. composed-retrieval triplets inside each family and split, 1-3 attribute changes apart
    by_family: dict[tuple[int, str], list[Product]] = {}
    for p in products:
        by_family.setdefault((p.family, p.split), []).append(p)
    triplets = []
    for (_, split), members in sorted(by_family.items()):
        for ref in members:
            candidates = [t for t in members if t is not ref and 1 <= len(changes_between(ref.spec, t.spec)) <= 3]
            order = rng.permutation(len(candidates))
            for j in order[: config.triplets_per_reference]:
                tgt = candidates[int(j)]
                changes = tuple(changes_between(ref.spec, tgt.spec))
                first = texts.relative_caption(list(changes), rng)
                second = texts.relative_caption(list(changes), rng)
                for _ in range(10):  # two annotators rarely write the very same words
                    if second != first:
                        break
                    second = texts.relative_caption(list(changes), rng)
                captions = (first, second)
                triplets.append(CatalogTriplet(FASHIONIQ_CATEGORY[ref.subcategory], split, ref.product_id,
                                               tgt.product_id, changes, captions))
    return Catalog(config, tuple(products), tuple(triplets), tuple(sorted(held)))
