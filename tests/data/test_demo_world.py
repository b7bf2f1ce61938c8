"""The demo's evaluation data is large enough for its protocols (counted on the catalog, no rendering)."""
from collections import Counter

from unifashion.data.synthetic.products import CatalogConfig, build_catalog
from unifashion.data.synthetic.taxonomy import FASHIONIQ_CATEGORY
from unifashion.recipes.quickstart import CIR_CATEGORIES, QuickstartConfig


def _val_products():
    c = QuickstartConfig()
    catalog = build_catalog(CatalogConfig(products=c.products, seed=c.seed, val_fraction=c.val_fraction,
                                          test_fraction=c.test_fraction))
    return c, [p for p in catalog.products if p.split == "val"], catalog


def test_every_composed_retrieval_gallery_holds_at_least_300_images():
    c, val, _ = _val_products()
    galleries = Counter(FASHIONIQ_CATEGORY[p.subcategory] for p in val)
    assert c.evaluation.categories == CIR_CATEGORIES
    assert min(galleries[k] for k in CIR_CATEGORIES) >= 300, galleries


def test_every_sample100_query_has_100_same_subcategory_negatives():
    """The CMR evaluation items (every view of the first cmr_products validation products): each
    item's subcategory holds >= 100 images of other products."""
    c, val, _ = _val_products()
    items = val[: c.evaluation.cmr_products]
    images = Counter()
    for p in items:
        images[p.subcategory] += p.n_views
    fewest = min(images[p.subcategory] - p.n_views for p in items)
    assert fewest >= 100, fewest


def test_training_sees_no_evaluation_product_and_enough_of_its_own():
    c, val, catalog = _val_products()
    train = [p for p in catalog.products if p.split == "train"]
    assert len(train) >= 800 and not {p.product_id for p in train} & {p.product_id for p in val}
    assert len(val) >= 2 * c.evaluation.generation_items  # the FID set and the disjoint real floor
    assert c.evaluation.generation_items >= 500
