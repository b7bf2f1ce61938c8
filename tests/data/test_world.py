"""The synthetic world on disk: every format written, read back with the right counts, deterministic."""
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from unifashion.data.formats import catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.detect import detect_format
from unifashion.data.synthetic.products import CatalogConfig, build_catalog
from unifashion.data.synthetic.taxonomy import WEARABLE_CATEGORIES
from unifashion.data.synthetic.world import FORMAT_DIRS, WorldConfig, write_world
from unifashion.errors import ConfigError


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_format_is_written_and_detected(small_world):
    root, manifest, _ = small_world
    for d in FORMAT_DIRS:
        assert detect_format(root / d) == d
    assert not list(root.parent.glob("*.partial"))


def test_formats_read_back_with_the_catalog_counts(small_world):
    root, manifest, config = small_world
    cat = build_catalog(config.catalog)
    n_images = sum(p.n_views for p in cat.products)
    assert manifest["counts"]["images"] == n_images

    items = catalog.load(root / "catalog")
    assert len(items) == n_images
    assert Counter(i.split for i in items) == Counter(p.split for p in cat.products for _ in range(p.n_views))
    first = items[0]
    product = next(p for p in cat.products if str(p.product_id) == first.product_id)
    assert first.caption == product.description and first.title == product.title
    assert first.extra["attributes"] == product.spec.as_dict()
    assert first.image.load().size == (64, 64)

    fg = fashiongen.load(root / "fashiongen", "train") + fashiongen.load(root / "fashiongen", "validation")
    assert len(fg) == n_images
    assert len(fashiongen.load(root / "fashiongen", "train")) == sum(p.n_views for p in cat.products if p.split == "train")

    f2 = fashion200k.load(root / "fashion200k", "train") + fashion200k.load(root / "fashion200k", "test")
    assert len(f2) == n_images

    triplets = [t for s in ("train", "val", "test") for t in fashioniq.load(root / "fashioniq", s)]
    assert len(triplets) == len(cat.triplets) == manifest["counts"]["triplets"]
    assert {"dress", "shirt", "toptee"} <= set(fashioniq.categories(root / "fashioniq"))
    gallery = sum(len(fashioniq.load_image_split(root / "fashioniq", c, s))
                  for c in fashioniq.categories(root / "fashioniq") for s in ("train", "val", "test"))
    assert gallery == len(cat.products)
    t = triplets[0]
    assert len(t.modifications) == 2 and t.target is not None
    assert t.reference.load().size == (64, 64)

    wearable = [p for p in cat.products if p.category in WEARABLE_CATEGORIES]
    paired = vitonhd.load(root / "vitonhd", "train", paired=True) + vitonhd.load(root / "vitonhd", "test", paired=True)
    assert len(paired) == len(wearable)
    unpaired = vitonhd.load(root / "vitonhd", "test", paired=False)
    assert unpaired and all(not s.paired for s in unpaired)
    s = paired[0]
    assert s.caption and s.sketch is not None
    assert s.pose_keypoints.shape == (18, 3)
    assert s.person.load().size == (48, 64)


def test_heldout_products_are_never_in_training_files(small_world):
    root, manifest, config = small_world
    held = {tuple(c) for c in manifest["heldout_combinations"]}
    assert held
    for item in catalog.load(root / "catalog", split="train"):
        a = item.extra["attributes"]
        assert (item.category, a["colour"], a["pattern"]) not in held


def test_same_seed_byte_identical_other_seed_different(tmp_path, small_world):
    root, _, config = small_world
    again = tmp_path / "again"
    write_world(again, WorldConfig(config.catalog, image_size=config.image_size, workers=1))
    assert _digests(again) == _digests(root)  # also: the number of workers does not matter
    other = tmp_path / "other"
    write_world(other, WorldConfig(CatalogConfig(products=60, seed=6, holdout=0.2), image_size=64, workers=1))
    a, b = _digests(root), _digests(other)
    common = set(a) & set(b)
    assert sum(a[k] != b[k] for k in common) > 0.9 * len(common)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    cfg = WorldConfig(CatalogConfig(products=5, seed=0), image_size=32, workers=1)
    with pytest.raises(ConfigError, match="exists"):
        write_world(out, cfg)
    assert (out / "keep.txt").read_text() == "mine"
    write_world(out, cfg, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()


def test_fashioniq_image_descriptions_are_the_catalog_detailed_texts(small_world):
    root, _, config = small_world
    captions = fashioniq.load_image_captions(root / "fashioniq")
    cat = build_catalog(config.catalog)
    assert len(captions) == len(cat.products)
    p = cat.products[0]
    assert captions[f"B{p.product_id:09d}"] == p.detailed
