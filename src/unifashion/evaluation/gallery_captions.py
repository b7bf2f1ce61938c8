"""Captions for caption-assisted composed retrieval (paper §4 Table 4, Appendix C).

Two uses, never mixing query text into a gallery caption (the official code's test leakage):
- `caption_gallery`: after phase 1b the model describes every gallery image from the image alone;
  composed retrieval then adds query·caption similarity to query·image similarity.
- `fashion_iq_cap`: Fashion-IQ has no image descriptions; like the paper's "Fashion-IQ-Cap", the
  captioner describes the *training* images, prompted with attribute keywords taken from the training
  split's relative captions only (the words annotators used about that image as a target).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from unifashion.data.samples import ImageRef, Triplet
from unifashion.data.vocabulary import COLOURS
from unifashion.errors import DataError

# Clothing words worth keeping as prompts (colour, pattern, sleeves, neckline, length, fit, material,
# details); everything else in a relative caption ("is", "more", "than") is dropped.
FASHION_WORDS = frozenset(
    {w for c in COLOURS for w in c.split()}
    | {"maroon", "gold", "silver", "tan", "cream", "khaki", "teal", "turquoise", "coral", "lavender", "violet",
       "magenta", "mustard", "ivory", "charcoal", "dark", "light", "bright", "pale",
       "stripe", "striped", "dot", "dotted", "polka", "check", "checked", "plaid", "gingham", "floral", "flower",
       "print", "printed", "graphic", "logo", "pattern", "plain", "solid", "lace", "sequin",
       "sleeve", "sleeveless", "long", "short", "strapless", "strap", "neck", "neckline", "v", "crew", "collar",
       "collared", "turtleneck", "hood", "hooded", "square", "mini", "midi", "maxi", "length", "cropped",
       "tight", "fitted", "slim", "loose", "baggy", "oversized", "denim", "leather", "knit", "silk", "cotton",
       "wool", "satin", "button", "zip", "pocket", "belt", "ruffle", "trim", "shiny", "sheer"})


def _lemma(word: str) -> str:
    """A light lemmatiser: plural "s" (sleeves -> sleeve, stripes -> stripe), not "ss"."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def relative_caption_keywords(triplets: Sequence[Triplet], max_words: int = 8) -> dict[str, str]:
    """{target image name: "kw1, kw2, ..."} from training triplets' relative captions.

    Refuses non-training triplets: keywords must never come from validation or test queries.
    """
    counts: dict[str, dict[str, int]] = {}
    for t in triplets:
        if t.split != "train":
            raise DataError(f"triplet {t.reference_id}->{t.target_id} is from split '{t.split}': "
                            "Fashion-IQ-Cap keywords come from the training split only")
        if t.target_id is None:
            continue
        bag = counts.setdefault(t.target_id, {})
        for caption in t.modifications:
            for word in re.findall(r"[a-z]+", caption.lower()):
                lemma = _lemma(word)
                if lemma in FASHION_WORDS:
                    bag[lemma] = bag.get(lemma, 0) + 1
    return {name: ", ".join(w for w, _ in sorted(bag.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words])
            for name, bag in counts.items() if bag}


def fashioniq_gallery(root: Path, split: str, categories: Sequence[str] | None = None) -> list[tuple[str, ImageRef]]:
    """(name, image) of every gallery image of the split (the given categories, or all), sorted by name."""
    from unifashion.data.formats import fashioniq

    names = sorted({n for c in (categories or fashioniq.categories(root))
                    for n in fashioniq.load_image_split(root, c, split)})
    return [(n, ImageRef(fashioniq.image_path(root, n))) for n in names]


def caption_images(model, images: Sequence[tuple[str, ImageRef]], *, style: str = "detailed",
                   hints: dict[str, str] | None = None, batch_size: int = 16, max_new_tokens: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """{name: caption} for (name, image) pairs, batched; `hints` maps names to keyword prompts."""
    if not images:
        raise DataError("no images to caption")
    out: dict[str, str] = {}
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pil = [ref.load() for _, ref in chunk]
        chunk_hints = [hints.get(name) for name, _ in chunk] if hints else None
        for (name, _), caption in zip(chunk, model.caption(pil, style, max_new_tokens=max_new_tokens,
                                                           hints=chunk_hints)):
            out[name] = caption
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return out


def readable_images(images: Sequence[tuple[str, ImageRef]], skipped: list[dict]) -> list[tuple[str, ImageRef]]:
    """The (name, image) pairs whose image decodes; each other one appended to `skipped` as {"item", "reason"}.
    DataError when none is left."""
    kept = []
    for name, ref in images:
        try:
            ref.load()
            kept.append((name, ref))
        except DataError as e:
            skipped.append({"item": name, "reason": str(e)})
    if not kept:
        raise DataError(f"no readable images: all {len(images)} were bad "
                        f"(first: {skipped[0]['item']}: {skipped[0]['reason']})")
    return kept


def write_gallery_captions(path: Path, captions: dict[str, str]) -> None:
    """{image name: caption} as UTF-8 JSON, written atomically (the file `read_gallery_captions` reads)."""
    from unifashion.storage import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(captions, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def read_gallery_captions(path: Path) -> dict[str, str]:
    """{image name: caption} from a JSON file; DataError naming the file when it is not that."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise DataError(f"{path}: expected {{image name: caption}}")
    return stored
