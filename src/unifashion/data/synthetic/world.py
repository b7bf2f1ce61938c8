"""Write the synthetic fashion world to disk in every release format the loaders read.

Layout of `out/`:
  catalog/      our JSONL catalog with ground-truth attributes and all three text styles, plus
                vocabulary.json (the phrases naming each category, colour and pattern)
  fashiongen/   fashiongen_{S}_{S}_{train,validation}.h5
  fashion200k/  labels/*_detect_all.txt, women/... images, test_queries.txt
  fashioniq/    captions/, image_splits/, images/
  vitonhd/      train/, test/, *_pairs.txt, plus MGD's captions and sketches
  manifest.json the configuration and counts (no timestamps: same seed -> byte-identical files)

Split mapping: products are train/val/test; formats with two splits put val and test together in
their held-out split (FashionGen "validation", Fashion200K and VITON-HD "test"), so no held-out
product is ever in a training file.

Stages: 1. draw the catalog  2. render product views (worker processes; each product's pixels depend
only on its own seed, so the output does not depend on the number of workers)  3. stream them into
the writers  4. render and write try-on samples  5. write triplets, splits and the manifest.
The world is built under a temporary name and renamed into place only when complete.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unifashion.data.formats.catalog import VOCABULARY_FILE, CatalogWriter
from unifashion.data.formats.fashion200k import Fashion200kWriter
from unifashion.data.formats.fashiongen import FashionGenWriter
from unifashion.data.formats.fashioniq import FashionIQWriter
from unifashion.data.formats.vitonhd import VitonHDWriter
from unifashion.data.sources import WORLD_GENERATOR_SUFFIX, WORLD_MANIFEST
from unifashion.data.synthetic.products import Catalog, CatalogConfig, Product, build_catalog
from unifashion.data.synthetic.render_products import random_view, render_product
from unifashion.data.synthetic.render_tryon import TryOnImages, random_person, render_tryon
from unifashion.data.synthetic.taxonomy import FASHION200K_CATEGORY, FASHIONIQ_CATEGORY, WEARABLE_CATEGORIES
from unifashion.data.synthetic.texts import BRANDS, vocabulary
from unifashion.errors import ConfigError
from unifashion.version import __version__

FORMAT_DIRS = ("catalog", "fashiongen", "fashion200k", "fashioniq", "vitonhd")
TWO_SPLIT = {"train": "train", "val": "test", "test": "test"}  # Fashion200K, VITON-HD
FASHIONGEN_SPLIT = {"train": "train", "val": "validation", "test": "validation"}

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class WorldConfig:
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    image_size: int = 128  # product images are S x S; try-on images S x round(3S/4)
    workers: int = 2  # render processes (results do not depend on it)


def fashioniq_name(product_id: int) -> str:
    """Fashion-IQ names images by Amazon ASIN; ours are ASIN-shaped and unique per product."""
    return f"B{product_id:09d}"


def vitonhd_stem(index: int) -> str:
    return f"{index:05d}_00"


def _render_views(product: Product, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(product.seed)
    views = [random_view(rng) for _ in range(product.n_views)]
    return [render_product(product.spec, product.colour_rgb, product.trim_rgb, v, size) for v in views]


def _render_tryon(product: Product, height: int) -> TryOnImages:
    person = random_person(np.random.default_rng([product.seed, 7]))
    return render_tryon(product.spec, product.colour_rgb, product.trim_rgb, person, height)


def _parallel_map(fn, items: list, arg, workers: int) -> Iterator:
    """Ordered map over worker processes (or in-process for one worker)."""
    if workers <= 1 or len(items) < 8:
        for it in items:
            yield fn(it, arg)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items, [arg] * len(items), chunksize=8)


def write_world(out: Path, config: WorldConfig, *, overwrite: bool = False,
                progress: ProgressFn | None = None) -> dict:
    """Build the world into `out`; returns the manifest (also written to out/manifest.json)."""
    if config.image_size < 32 or config.image_size > 1024:
        raise ConfigError(f"--image-size must be between 32 and 1024 pixels (got {config.image_size})")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    report = progress or (lambda stage, done, total: None)

    # 1. the catalog
    catalog = build_catalog(config.catalog)
    products = list(catalog.products)
    size = config.image_size
    gen_rng = np.random.default_rng([config.catalog.seed, 99])  # FashionGen's extra fields

    # 2-3. product views -> catalog, FashionGen, Fashion200K, Fashion-IQ
    fiq = FashionIQWriter(tmp / "fashioniq")
    f200k = Fashion200kWriter(tmp / "fashion200k")
    cat_writer = CatalogWriter(tmp / "catalog")
    f200k_paths: dict[int, str] = {}
    fg_writers = {s: FashionGenWriter(tmp / "fashiongen", s, size) for s in ("train", "validation")}
    n_images = 0
    for i, (product, images) in enumerate(zip(products, _parallel_map(_render_views, products, size, config.workers))):
        gender = "WOMEN" if gen_rng.random() < 0.6 else "MEN"
        brand = BRANDS[int(gen_rng.integers(len(BRANDS)))]
        season = f"{'SS' if gen_rng.random() < 0.5 else 'FW'}{int(gen_rng.integers(15, 19))}"
        msrp = float(np.round(gen_rng.uniform(40, 900), 2))
        material = product.spec.get("material")
        for k, image in enumerate(images):
            item_id = f"{product.product_id}_{k}"
            cat_writer.add(item_id=item_id, product_id=str(product.product_id), category=product.category,
                           subcategory=product.subcategory, split=product.split, image=image,
                           title=product.title, description=product.description, detailed=product.detailed,
                           attributes=product.spec.as_dict(), view={"index": k})
            fg_writers[FASHIONGEN_SPLIT[product.split]].add(
                image=np.asarray(image, dtype=np.uint8),  # (S, S, 3)
                description=product.description, name=product.title.upper(),
                category=product.category.upper(), subcategory=product.subcategory.upper(),
                product_id=product.product_id, pose=f"id_gridfs_{k + 1}", gender=gender, brand=brand,
                composition=f"100% {material}", season=season,
                department="WOMENSWEAR" if gender == "WOMEN" else "MENSWEAR", msrp_usd=msrp)
            rel = f200k.add(TWO_SPLIT[product.split], FASHION200K_CATEGORY[product.subcategory],
                            product.subcategory.replace(" ", "_"), str(product.product_id), k, image,
                            product.title)
            if k == 0:
                f200k_paths[product.product_id] = rel
                fiq.add_image(fashioniq_name(product.product_id), image)
                fiq.add_image_caption(fashioniq_name(product.product_id), product.detailed)
            n_images += 1
        report("render products", i + 1, len(products))
    for w in fg_writers.values():
        w.close()

    # 4. try-on and design samples (VITON-HD with MGD's captions and sketches)
    wearable = [p for p in products if p.category in WEARABLE_CATEGORIES]
    viton = VitonHDWriter(tmp / "vitonhd")
    stems_by_split: dict[str, list[str]] = {"train": [], "test": []}
    for i, (product, images) in enumerate(zip(wearable, _parallel_map(_render_tryon, wearable, size, config.workers))):
        split = TWO_SPLIT[product.split]
        stem = vitonhd_stem(i)
        viton.add(split, stem, images, caption=product.detailed)
        stems_by_split[split].append(stem)
        report("render try-on", i + 1, len(wearable))
    # unpaired setting (VITON-HD's test_pairs.txt): each test person with another test garment
    test_stems = stems_by_split["test"]
    for j, stem in enumerate(test_stems):
        viton.add_pair("test", stem, test_stems[(j + 1) % len(test_stems)])
    for stem in stems_by_split["train"]:
        viton.add_pair("train", stem, stem)
    viton.close()

    # 5. triplets, gallery splits, manifest
    for t in catalog.triplets:
        fiq.add_triplet(t.fashioniq_category, t.split, fashioniq_name(t.reference), fashioniq_name(t.target),
                        list(t.captions))
        if t.split != "train" and len(t.changes) == 1:  # TIRG's test queries differ in one word
            f200k.add_test_query(f200k_paths[t.reference], f200k_paths[t.target])
    galleries: dict[tuple[str, str], list[str]] = {
        (c, s): [] for c in sorted(set(FASHIONIQ_CATEGORY.values())) for s in ("train", "val", "test")}
    for p in products:
        galleries.setdefault((FASHIONIQ_CATEGORY[p.subcategory], p.split), []).append(fashioniq_name(p.product_id))
    for (category, split), names in sorted(galleries.items()):
        fiq.set_image_split(category, split, names)
    fiq.close()
    f200k.close()
    cat_writer.close()
    (tmp / "catalog" / VOCABULARY_FILE).write_text(json.dumps(vocabulary(), indent=1, sort_keys=True) + "\n")

    manifest = _manifest(config, catalog, n_images, stems_by_split)
    (tmp / WORLD_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest


def _manifest(config: WorldConfig, catalog: Catalog, n_images: int, stems: dict) -> dict:
    split_counts: dict[str, int] = {}
    for p in catalog.products:
        split_counts[p.split] = split_counts.get(p.split, 0) + 1
    return {
        "generator": f"unifashion {__version__}{WORLD_GENERATOR_SUFFIX}",  # what `sources.is_world` recognises
        # what determines the files (not `workers`, which does not)
        "config": {"catalog": asdict(config.catalog), "image_size": config.image_size},
        "formats": list(FORMAT_DIRS),
        "counts": {
            "products": len(catalog.products),
            "images": n_images,
            "products_per_split": split_counts,
            "triplets": len(catalog.triplets),
            "tryon": {k: len(v) for k, v in stems.items()},
        },
        "heldout_combinations": [list(c) for c in catalog.heldout_combinations],
    }
