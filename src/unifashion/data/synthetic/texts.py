"""Product texts in three styles, and Fashion-IQ-style relative captions.

Styles follow the datasets the paper captions for (its instruction templates):
- `title`: short product name, Fashion200K style ("red striped v-neck tee").
- `description`: professional copy, FashionGen style ("Short sleeve cotton t-shirt in red. ...").
- `detailed`: a plain sentence naming every visible attribute, Fashion-IQ-cap style.
Templates and synonyms are drawn from an rng, so text is not a fixed function of the attributes.
"""
from __future__ import annotations

import numpy as np

from unifashion.data.synthetic.taxonomy import SUBCATEGORY_TO_CATEGORY, GarmentSpec
from unifashion.data.vocabulary import COLOURS

SUBCATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("t-shirt", "tee", "t-shirt"),
    "shirt": ("shirt", "button-up shirt", "shirt"),
    "blouse": ("blouse", "top", "blouse"),
    "sweater": ("sweater", "jumper", "pullover"),
    "hoodie": ("hoodie", "hooded sweatshirt", "hoodie"),
    "trousers": ("trousers", "pants", "trousers"),
    "jeans": ("jeans", "denim jeans", "jeans"),
    "shorts": ("shorts", "shorts"),
    "skirt": ("skirt", "skirt"),
    "dress": ("dress", "dress", "frock"),
    "coat": ("coat", "overcoat", "coat"),
    "jacket": ("jacket", "jacket"),
    "sneakers": ("sneakers", "trainers", "sneakers"),
    "boots": ("boots", "ankle boots", "boots"),
    "sandals": ("sandals", "strappy sandals", "sandals"),
    "tote": ("tote bag", "tote", "shopper bag"),
    "backpack": ("backpack", "rucksack", "backpack"),
    "shoulder bag": ("shoulder bag", "shoulder bag", "crossbody bag"),
}

# The interchangeable phrases that name an attribute value, one drawn per text: "[attribute]" starts a
# table, then "value: phrase | phrase | ..." (an empty phrase says nothing: a solid title has no pattern
# word). "pattern adjective" is the title's pattern word; the rest are description and detailed phrases.
_PHRASE_TABLES = """
[pattern adjective]
solid:  | plain | solid
stripes: striped | striped | stripe
dots: polka-dot | dotted | spotted
checks: checked | check | gingham
floral: floral | flower-print | floral
graphic print: graphic | graphic-print | printed
[pattern]
solid: Solid colour throughout | Plain, unpatterned finish | Tonal solid colour
stripes: Striped pattern throughout | Allover stripes | Stripe pattern
dots: Polka dot pattern throughout | Allover dot print | Dotted pattern
checks: Check pattern throughout | Gingham check | Allover checks
floral: Floral print throughout | Allover flower print | Floral pattern
graphic print: Graphic print at front | Bold printed graphic | Graphic motif at front
[sleeve]
sleeveless: sleeveless | sleeveless | sleeve-free
short: short sleeve | short-sleeved | short sleeve
long: long sleeve | long-sleeved | long sleeve
[neckline]
crew: crewneck collar | round neck | crew neckline
v-neck: v-neck | v-neckline | v-neck collar
square: square neckline | square neck | square neckline
turtleneck: turtleneck collar | high roll neck | turtleneck
collared: spread collar | pointed collar | classic collar
[length]
mini: mini length | short mini cut | above-the-knee length
midi: midi length | mid-calf length | midi cut
maxi: maxi length | floor-length cut | long maxi length
full: full length | full-length legs | full length
cropped: cropped length | cropped at the ankle | cropped cut
hip: hip length | hip-length cut | hip length
knee: knee length | knee-length cut | long knee length
[fit]
slim: slim fit | slim, fitted cut | tailored slim fit
regular: regular fit | classic fit | regular cut
loose: relaxed fit | loose, oversized fit | relaxed oversized cut
[material]
cotton: cotton | cotton jersey | cotton-blend
denim: denim | denim | washed denim
leather: leather | smooth leather | grained leather
knit: knit | rib knit | wool-blend knit
silk: silk | silk satin | lustrous silk
"""


def _phrase_tables(text: str) -> dict[str, dict[str, tuple[str, ...]]]:
    tables: dict[str, dict[str, tuple[str, ...]]] = {}
    for line in text.strip("\n").splitlines():
        if line.startswith("["):
            table = tables.setdefault(line.strip("[]"), {})
        else:
            value, _, phrases = line.partition(": ")
            table[value] = tuple(phrases.split(" | "))
    return tables


PHRASES = _phrase_tables(_PHRASE_TABLES)  # attribute -> value -> phrases

TRIM_PART = {
    "tops": "trim", "bottoms": "waistband", "dresses": "trim", "outerwear": "trim",
    "footwear": "sole", "bags": "handles",
}
BRANDS = ("Northline", "Atelier Vey", "Mono Studio", "Ferro & Sons", "Lumen", "Okra", "Palme")


# Pattern words the templates use outside the title's pattern adjectives (detailed(), pattern phrases).
PATTERN_WORDS = {
    "solid": ("solid", "plain", "unpatterned"),
    "stripes": ("stripes",),
    "dots": ("dot", "dots"),
    "checks": ("checks",),
    "floral": ("flower",),
    "graphic print": ("graphic print",),
}


def vocabulary() -> dict[str, dict[str, list[str]]]:
    """Every phrase the texts use to name each value: {attribute: {value: [phrase, ...]}}.

    Attributes: "category" (every subcategory synonym of it), "subcategory", "colour" and "pattern".
    Lower-case, no empty strings, no duplicates, sorted; `unifashion synth` writes it as
    catalog/vocabulary.json for `evaluation.attributes`.
    """
    def clean(words) -> list[str]:
        return sorted({w.lower() for w in words if w})

    subcategory = {sub: clean(words) for sub, words in SUBCATEGORY_SYNONYMS.items()}
    category: dict[str, list[str]] = {}
    for sub, words in subcategory.items():
        category[SUBCATEGORY_TO_CATEGORY[sub]] = clean([*category.get(SUBCATEGORY_TO_CATEGORY[sub], []), *words])
    adjectives = PHRASES["pattern adjective"]
    pattern = {p: clean([*adjectives[p], *PATTERN_WORDS[p]]) for p in adjectives}
    return {"category": category, "subcategory": subcategory, "colour": {c: [c] for c in COLOURS},
            "pattern": pattern}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(rng: np.random.Generator, attribute: str, value: str) -> str:
    return _pick(rng, PHRASES[attribute][value])


def _shape_phrases(a: dict[str, str], rng: np.random.Generator) -> list[str]:
    """A phrase for each of neckline, length and fit the product has, drawn in that order."""
    return [_phrase(rng, name, a[name]) for name in ("neckline", "length", "fit") if name in a]


TITLE_DETAIL = {
    "neckline": {"crew": "crewneck", "v-neck": "v-neck", "square": "square-neck", "turtleneck": "turtleneck",
                 "collared": "collared"},
    "sleeve": {"sleeveless": "sleeveless", "short": "short-sleeve", "long": "long-sleeve"},
    "length": {"mini": "mini", "midi": "midi", "maxi": "maxi", "full": "full-length", "cropped": "cropped",
               "hip": "hip-length", "knee": "knee-length"},
    "material": {m: m for m in PHRASES["material"]},
}


def title(spec: GarmentSpec, rng: np.random.Generator) -> str:
    """Short name, Fashion200K style: colour, pattern, one distinctive detail, noun."""
    a = spec.as_dict()
    words = [a["colour"], _phrase(rng, "pattern adjective", a["pattern"])]
    noun = _pick(rng, SUBCATEGORY_SYNONYMS[spec.subcategory])
    detail_options = [k for k in ("neckline", "sleeve", "length", "material") if k in a and a[k] not in noun]
    if detail_options and rng.random() < 0.7:
        k = detail_options[int(rng.integers(len(detail_options)))]
        words.append(TITLE_DETAIL[k][a[k]])
    words.append(noun)
    return " ".join(w for w in words if w)


def description(spec: GarmentSpec, rng: np.random.Generator) -> str:
    """Professional copy, FashionGen style: sentences of product facts, shuffled in part."""
    a = spec.as_dict()
    noun = _pick(rng, SUBCATEGORY_SYNONYMS[spec.subcategory])
    lead = [_phrase(rng, "sleeve", a["sleeve"])] if "sleeve" in a else []
    lead.append(_phrase(rng, "material", a["material"]))
    words = " ".join(lead).split()
    if words[-1] == noun.split()[0]:  # "denim" + "denim jeans": say it once
        words.pop()
    first = f"{' '.join([*words, noun]).capitalize()} in {a['colour']}."
    rest = [f"{_phrase(rng, 'pattern', a['pattern'])}."]
    rest += [f"{phrase.capitalize()}." for phrase in _shape_phrases(a, rng)]
    rest.append(f"Contrast {TRIM_PART[spec.category]} in {a['trim']}.")
    rng.shuffle(rest)
    closers = ("Tonal stitching.", "", "Signature logo at back.", "", "Unlined.")
    return " ".join(s for s in [first, *rest, _pick(rng, closers)] if s)


def detailed(spec: GarmentSpec, rng: np.random.Generator) -> str:
    """One plain sentence naming every attribute, Fashion-IQ-cap style."""
    a = spec.as_dict()
    noun = _pick(rng, SUBCATEGORY_SYNONYMS[spec.subcategory])
    pattern = {"solid": "solid", "stripes": "striped", "dots": "polka-dot", "checks": "checked",
               "floral": "floral", "graphic print": "graphic print"}[a["pattern"]]
    parts = []
    if "sleeve" in a:
        parts.append("no sleeves" if a["sleeve"] == "sleeveless" else f"{a['sleeve']} sleeves")
    parts += [_with_article(phrase) for phrase in _shape_phrases(a, rng)]
    parts.append(f"{a['trim']} {TRIM_PART[spec.category]}")
    rng.shuffle(parts)
    body = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    made = _pick(rng, ("made of", "in", "of"))
    return f"{_with_article(a['colour'])} {pattern} {noun} {made} {a['material']} with {body}"


def _with_article(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _luminance(name: str) -> float:
    r, g, b = COLOURS[name]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _change_phrase(name: str, old: str, new: str, rng: np.random.Generator) -> str:
    """One attribute change, worded the way Fashion-IQ annotators write ("is red", "has stripes")."""
    if name == "colour":
        options = [f"is {new}", f"is {new} instead of {old}", f"is {new} colored", f"in {new}"]
        if abs(_luminance(new) - _luminance(old)) > 60:
            options.append(f"is {'darker' if _luminance(new) < _luminance(old) else 'lighter'} and {new}")
        return _pick(rng, tuple(options))
    if name == "pattern":
        if new == "solid":
            return _pick(rng, ("has no pattern", "is plain", "is solid colored", "has no print"))
        adjective = {"stripes": "striped", "dots": "polka dotted", "checks": "checked",
                     "floral": "floral", "graphic print": "printed"}[new]
        noun = {"stripes": "stripes", "dots": "dots", "checks": "a check pattern",
                "floral": "a floral print", "graphic print": "a graphic print"}[new]
        return _pick(rng, (f"has {noun}", f"is {adjective}",
                           f"has {noun} instead of {'a plain look' if old == 'solid' else old}"))
    if name == "sleeve":
        if new == "sleeveless":
            return _pick(rng, ("is sleeveless", "has no sleeves"))
        return _pick(rng, (f"has {new} sleeves", f"with {new} sleeves",
                           f"has {'longer' if new == 'long' or old == 'sleeveless' else 'shorter'} sleeves"))
    if name == "neckline":
        phrase = {"crew": "a round neck", "v-neck": "a v-neck", "square": "a square neckline",
                  "turtleneck": "a turtleneck", "collared": "a collar"}[new]
        return _pick(rng, (f"has {phrase}", f"with {phrase}"))
    if name == "length":
        order = ("mini", "midi", "maxi") if new in ("mini", "midi", "maxi") else \
            ("cropped", "full") if new in ("cropped", "full") else ("hip", "knee")
        longer = order.index(new) > order.index(old)
        return _pick(rng, (f"is {'longer' if longer else 'shorter'}", f"is {new} length",
                           f"is {'longer' if longer else 'shorter'}, {new} length"))
    if name == "fit":
        tighter = FIT_ORDER.index(new) < FIT_ORDER.index(old)
        return _pick(rng, (f"is {'tighter' if tighter else 'looser'}", f"is {new} fit",
                           f"is {'more fitted' if tighter else 'more relaxed'}"))
    if name == "material":
        return _pick(rng, (f"is made of {new}", f"is {new}", f"looks like {new}"))
    if name == "trim":
        return _pick(rng, (f"has {new} trim", f"with {new} details", f"has {new} edges"))
    if name == "subcategory":
        return _pick(rng, (f"is a {new}", f"is a {new} instead", f"is a {new} not a {old}"))
    raise ValueError(f"no wording for attribute '{name}'")


FIT_ORDER = ("slim", "regular", "loose")


def relative_caption(changes: list[tuple[str, str, str]], rng: np.random.Generator) -> str:
    """A modification text covering every (attribute, old, new) change, in random order."""
    phrases = [_change_phrase(n, o, v, rng) for n, o, v in changes]
    rng.shuffle(phrases)
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return _pick(rng, (" and ", ", ", " and also ")).join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]
