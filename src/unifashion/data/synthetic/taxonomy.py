"""The synthetic fashion world's taxonomy: categories, subcategories and visible attributes.

FashionGen-like categories; every attribute here is drawn visibly by `render_products.py` and
`render_tryon.py`, so a model can learn it from pixels. The colours are `data.vocabulary.COLOURS`.
`GarmentSpec` is one product: its subcategory plus one value per attribute that the subcategory has
(see `ATTRIBUTES_BY_SUBCATEGORY`).
"""
from __future__ import annotations

from dataclasses import dataclass

from unifashion.data.vocabulary import COLOURS

# category -> subcategories
CATEGORIES: dict[str, tuple[str, ...]] = {
    "tops": ("t-shirt", "shirt", "blouse", "sweater", "hoodie"),
    "bottoms": ("trousers", "jeans", "shorts", "skirt"),
    "dresses": ("dress",),
    "outerwear": ("coat", "jacket"),
    "footwear": ("sneakers", "boots", "sandals"),
    "bags": ("tote", "backpack", "shoulder bag"),
}
SUBCATEGORY_TO_CATEGORY = {sub: cat for cat, subs in CATEGORIES.items() for sub in subs}

PATTERNS = ("solid", "stripes", "dots", "checks", "floral", "graphic print")
SLEEVES = ("sleeveless", "short", "long")
NECKLINES = ("crew", "v-neck", "square", "turtleneck", "collared")
FITS = ("slim", "regular", "loose")
MATERIALS = ("cotton", "denim", "leather", "knit", "silk")
# Length: for dresses and skirts a hem height, for trousers full or cropped, for coats hip or knee.
LENGTHS_DRESS = ("mini", "midi", "maxi")
LENGTHS_TROUSERS = ("full", "cropped")
LENGTHS_COAT = ("hip", "knee")
# Trim: collar, cuffs, hem band, soles, straps or handles are drawn in this colour.
TRIMS = tuple(COLOURS)

# subcategory -> attribute -> allowed values. "colour" and "pattern" everywhere.
ATTRIBUTES_BY_SUBCATEGORY: dict[str, dict[str, tuple[str, ...]]] = {}
for _sub in CATEGORIES["tops"]:
    ATTRIBUTES_BY_SUBCATEGORY[_sub] = {
        "colour": tuple(COLOURS), "pattern": PATTERNS, "sleeve": SLEEVES,
        "neckline": NECKLINES, "fit": FITS, "material": ("cotton", "knit", "silk", "denim"),
        "trim": TRIMS,
    }
ATTRIBUTES_BY_SUBCATEGORY["shirt"]["neckline"] = ("collared", "v-neck")
ATTRIBUTES_BY_SUBCATEGORY["hoodie"] = {  # hooded: no neckline choice; always sleeved
    "colour": tuple(COLOURS), "pattern": PATTERNS, "sleeve": ("short", "long"), "fit": FITS,
    "material": ("cotton", "knit"), "trim": TRIMS,
}
ATTRIBUTES_BY_SUBCATEGORY["sweater"]["material"] = ("knit", "cotton")
for _sub in ("trousers", "jeans"):
    ATTRIBUTES_BY_SUBCATEGORY[_sub] = {
        "colour": tuple(COLOURS), "pattern": PATTERNS, "length": LENGTHS_TROUSERS, "fit": FITS,
        "material": ("denim",) if _sub == "jeans" else ("cotton", "leather", "silk", "knit"),
        "trim": TRIMS,
    }
ATTRIBUTES_BY_SUBCATEGORY["shorts"] = {
    "colour": tuple(COLOURS), "pattern": PATTERNS, "fit": FITS,
    "material": ("cotton", "denim", "leather"), "trim": TRIMS,
}
ATTRIBUTES_BY_SUBCATEGORY["skirt"] = {
    "colour": tuple(COLOURS), "pattern": PATTERNS, "length": LENGTHS_DRESS, "fit": FITS,
    "material": MATERIALS, "trim": TRIMS,
}
ATTRIBUTES_BY_SUBCATEGORY["dress"] = {
    "colour": tuple(COLOURS), "pattern": PATTERNS, "sleeve": SLEEVES, "neckline": NECKLINES,
    "length": LENGTHS_DRESS, "fit": FITS, "material": ("cotton", "knit", "silk", "denim"),
    "trim": TRIMS,
}
for _sub in CATEGORIES["outerwear"]:
    ATTRIBUTES_BY_SUBCATEGORY[_sub] = {
        "colour": tuple(COLOURS), "pattern": ("solid", "checks", "stripes", "dots"),
        "length": LENGTHS_COAT if _sub == "coat" else ("hip",), "fit": FITS,
        "material": ("cotton", "denim", "leather", "knit"), "neckline": ("collared", "v-neck"),
        "trim": TRIMS,
    }
for _sub in CATEGORIES["footwear"]:
    ATTRIBUTES_BY_SUBCATEGORY[_sub] = {
        "colour": tuple(COLOURS), "pattern": ("solid", "stripes", "dots", "checks"),
        "material": ("leather", "cotton", "knit"), "trim": TRIMS,
    }
for _sub in CATEGORIES["bags"]:
    ATTRIBUTES_BY_SUBCATEGORY[_sub] = {
        "colour": tuple(COLOURS), "pattern": PATTERNS, "material": ("leather", "cotton", "denim"),
        "trim": TRIMS,
    }

# Attributes drawn on every product, in the order texts mention them.
ATTRIBUTE_ORDER = ("colour", "pattern", "sleeve", "neckline", "length", "fit", "material", "trim")

# Fashion-IQ's three categories and the extra ones our world adds, by subcategory.
FASHIONIQ_CATEGORY = {
    "dress": "dress",
    "shirt": "shirt", "sweater": "shirt",
    "t-shirt": "toptee", "blouse": "toptee", "hoodie": "toptee",
    "trousers": "bottoms", "jeans": "bottoms", "shorts": "bottoms", "skirt": "bottoms",
    "coat": "outerwear", "jacket": "outerwear",
    "sneakers": "footwear", "boots": "footwear", "sandals": "footwear",
    "tote": "bags", "backpack": "bags", "shoulder bag": "bags",
}
# Fashion200K's five label files (dress, jacket, pants, skirt, top) plus ours for the rest.
FASHION200K_CATEGORY = {
    "dress": "dress", "coat": "jacket", "jacket": "jacket",
    "trousers": "pants", "jeans": "pants", "shorts": "pants", "skirt": "skirt",
    "t-shirt": "top", "shirt": "top", "blouse": "top", "sweater": "top", "hoodie": "top",
    "sneakers": "shoes", "boots": "shoes", "sandals": "shoes",
    "tote": "bag", "backpack": "bag", "shoulder bag": "bag",
}
# Garments a person can wear in a try-on sample (VITON-HD style); footwear and bags are not.
WEARABLE_CATEGORIES = ("tops", "bottoms", "dresses", "outerwear")


@dataclass(frozen=True)
class GarmentSpec:
    """One product's identity: what the renderer draws and the texts describe."""

    subcategory: str
    attributes: tuple[tuple[str, str], ...]  # sorted (name, value) pairs, as in ATTRIBUTES_BY_SUBCATEGORY

    @property
    def category(self) -> str:
        return SUBCATEGORY_TO_CATEGORY[self.subcategory]

    def get(self, name: str, default: str | None = None) -> str | None:
        return dict(self.attributes).get(name, default)

    def as_dict(self) -> dict[str, str]:
        return dict(self.attributes)
