"""Which release format a folder holds, and a JSON-serialisable summary of it (`data inspect`)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from unifashion.data.formats import catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.common import LoadReport
from unifashion.errors import DataError

FORMATS = ("fashiongen", "fashion200k", "fashioniq", "vitonhd", "catalog")
N_EXAMPLES = 3

_LOOKED_FOR = (
    "fashiongen_H_W_{train,validation}.h5 (FashionGen), labels/*_{train,test}_detect_all.txt (Fashion200K), "
    "captions/cap.*.*.json (Fashion-IQ), {train,test}_pairs.txt with train/ or test/ (VITON-HD), "
    "catalog.jsonl (catalog)"
)


def _matches(root: Path) -> list[str]:
    found = []
    names = {p.name for p in root.iterdir()}
    if any(fashiongen.FILE_RE.match(n) for n in names):
        found.append("fashiongen")
    labels = root / "labels"
    if labels.is_dir() and any(fashion200k.LABEL_RE.match(p.name) for p in labels.iterdir()):
        found.append("fashion200k")
    caps = root / "captions"
    if caps.is_dir() and any(fashioniq.CAP_RE.match(p.name) for p in caps.iterdir()):
        found.append("fashioniq")
    if any(f"{s}_pairs.txt" in names and (root / s).is_dir() for s in vitonhd.SPLITS):
        found.append("vitonhd")
    if catalog.FILENAME in names:
        found.append("catalog")
    return found


def detect_format(root: Path) -> str:
    """One of FORMATS, from the folder's layout; DataError naming the folder otherwise."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found = _matches(root)
    if not found:
        raise DataError(f"{root}: no known dataset layout (looked for {_LOOKED_FOR})")
    if len(found) > 1:
        raise DataError(f"{root}: ambiguous dataset layout, matches {', '.join(found)}")
    return found[0]


def _pair_dict(s) -> dict:
    return {"item_id": s.item_id, "product_id": s.product_id, "category": s.category,
            "subcategory": s.subcategory, "split": s.split, "title": s.title, "caption": s.caption,
            "image": str(s.image)}


def _split_entry(samples, key) -> dict:
    return {"count": len(samples), "per_category": dict(sorted(Counter(key(s) for s in samples).items()))}


def summarize(root: Path, *, skip_bad: bool = False, check_images: bool = False) -> dict:
    """{"format", "root", "splits": {split: {"count", "per_category", ...}}, "examples": [...], ...}.

    The first bad item raises DataError naming it; with `skip_bad` bad items are skipped, counted
    (`skipped`) and the first few listed (`skipped_examples`). `check_images` decodes every image.
    """
    root = Path(root)
    fmt = detect_format(root)
    report = LoadReport()
    splits: dict[str, dict] = {}
    examples: list[dict] = []
    out: dict = {"format": fmt, "root": str(root)}
    if fmt in ("fashiongen", "fashion200k", "catalog"):
        if fmt == "fashiongen":
            present = [s for s in fashiongen.SPLITS
                       if any((m := fashiongen.FILE_RE.match(p.name)) and m.group(3) == s for p in root.iterdir())]
            per = {s: fashiongen.load(root, s, skip_bad=skip_bad, report=report, check_images=check_images) for s in present}
        elif fmt == "fashion200k":
            present = [s for s in fashion200k.SPLITS
                       if any((m := fashion200k.LABEL_RE.match(p.name)) and m.group(2) == s
                              for p in (root / "labels").iterdir())]
            per = {s: fashion200k.load(root, s, skip_bad=skip_bad, report=report, check_images=check_images) for s in present}
            if (root / fashion200k.TEST_QUERIES).is_file():
                out["test_queries"] = len(fashion200k.load_test_queries(root, skip_bad=skip_bad, report=report))
        else:
            items = catalog.load(root, skip_bad=skip_bad, report=report, check_images=check_images)
            per = {s: [x for x in items if x.split == s] for s in catalog.SPLITS}
            per = {s: v for s, v in per.items() if v}
        for s, items in per.items():
            splits[s] = _split_entry(items, lambda x: x.category)
            splits[s]["products"] = len({x.product_id for x in items})
            examples += [_pair_dict(x) for x in items[:N_EXAMPLES]]
    elif fmt == "fashioniq":
        cats = fashioniq.categories(root)
        for s in fashioniq.SPLITS:
            if not any((root / "captions" / f"cap.{c}.{s}.json").is_file() for c in cats):
                continue
            triplets = fashioniq.load(root, s, skip_bad=skip_bad, report=report, check_images=check_images)
            entry = _split_entry(triplets, lambda t: t.category)
            entry["gallery_images_per_category"] = {
                c: len(fashioniq.load_image_split(root, c, s)) for c in cats
                if (root / "image_splits" / f"split.{c}.{s}.json").is_file()}
            splits[s] = entry
            examples += [{"category": t.category, "reference_id": t.reference_id, "target_id": t.target_id,
                          "modifications": list(t.modifications), "reference_image": str(t.reference),
                          "target_image": str(t.target) if t.target else None, "split": t.split}
                         for t in triplets[:N_EXAMPLES]]
        out["categories"] = cats
    else:  # vitonhd: the pair lists as given (the unpaired setting for test), every file checked
        for s in vitonhd.SPLITS:
            if not (root / f"{s}_pairs.txt").is_file() or not (root / s).is_dir():
                continue
            samples = vitonhd.load(root, s, paired=False, skip_bad=skip_bad, report=report,
                                   check_images=check_images)
            splits[s] = {"count": len(samples),
                         "unpaired_pairs": sum(1 for x in samples if x.person_id != x.garment_id),
                         "with_caption": sum(1 for x in samples if x.caption is not None),
                         "sketches_paired": (root / s / "im_sketch").is_dir(),
                         "sketches_unpaired": (root / s / "im_sketch_unpaired").is_dir(),
                         "agnostic_masks": (root / s / "agnostic-mask").is_dir()}
            examples += [{"person_id": x.person_id, "garment_id": x.garment_id, "split": s, "caption": x.caption,
                          "person_image": str(x.person), "garment_image": str(x.garment)}
                         for x in samples[:N_EXAMPLES]]
        out["mgd_captions"] = (root / vitonhd.CAPTIONS).is_file()
    out["splits"] = splits
    out["examples"] = examples
    out["skipped"] = len(report.skipped)
    out["skipped_examples"] = report.skipped[:5]
    return out

