"""Which data the given folders hold, and which task or training phase reads which.

A folder is a synthetic world (its catalog, Fashion-IQ and VITON-HD subfolders) or one dataset in its
release format. Image-text pairs (FashionGen, the catalog or Fashion200K) serve cross-modal retrieval,
captions and text-to-image generation; Fashion-IQ serves composed retrieval; VITON-HD serves try-on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unifashion.data.formats import catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.detect import detect_format
from unifashion.data.samples import ImageTextPair
from unifashion.errors import DataError
from unifashion.storage import MANIFEST

TASKS = ("cmr", "cir", "cap", "gen", "tryon", "design")
PAIR_FORMATS = ("fashiongen", "catalog", "fashion200k")
# the loader of each image-text pair format: (folder, split, *, skip_bad, report) -> pairs
PAIR_LOADERS = {"fashiongen": fashiongen.load, "catalog": catalog.load, "fashion200k": fashion200k.load}
# every split of each format, in its release's order
SPLITS = {"fashiongen": fashiongen.SPLITS, "catalog": catalog.SPLITS, "fashion200k": fashion200k.SPLITS,
          "fashioniq": fashioniq.SPLITS, "vitonhd": vitonhd.SPLITS}
# the split each format is evaluated on (the papers': FashionGen validation, Fashion-IQ val, ...)
EVAL_SPLITS = {"fashiongen": "validation", "catalog": "val", "fashion200k": "test", "fashioniq": "val",
               "vitonhd": "test"}
WORLD_FORMATS = ("catalog", "fashioniq", "vitonhd")  # what a synthetic world is evaluated on
NEEDS = {"cmr": "pairs", "cap": "pairs", "gen": "pairs", "cir": "fashioniq", "tryon": "vitonhd", "design": "vitonhd"}
NEED_NAMES = {"pairs": "image-text pairs (FashionGen, a catalog or Fashion200K)", "fashioniq": "Fashion-IQ",
              "vitonhd": "VITON-HD"}
# A world's manifest (data/synthetic/world.py writes it): models, indexes and checkpoints also keep a
# manifest.json, but only a world's names its generator "unifashion <version> synth" and lists its formats.
WORLD_MANIFEST = MANIFEST
WORLD_GENERATOR_SUFFIX = " synth"


def is_world(folder: Path) -> bool:
    """Whether `folder` is a synthetic world (recognised by its manifest, whatever it holds besides)."""
    path = Path(folder) / WORLD_MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return False
    return (isinstance(manifest, dict) and isinstance(manifest.get("formats"), list)
            and isinstance(manifest.get("generator"), str) and manifest["generator"].endswith(WORLD_GENERATOR_SUFFIX))


def format_folder(data: Path, wanted: tuple[str, ...], *, needed_by: str = "this phase") -> tuple[str, Path]:
    """(format, folder) of the first wanted format: `data` itself, or a synthetic world's subfolder.
    DataError when there is none (`needed_by` names who needs it in the message)."""
    data = Path(data)
    if is_world(data):
        for fmt in wanted:
            if (data / fmt).is_dir():
                return fmt, data / fmt
        raise DataError(f"{data}: the world has none of {', '.join(wanted)}")
    fmt = detect_format(data)
    if fmt not in wanted:
        raise DataError(f"{data}: is {fmt} data; {needed_by} needs {' or '.join(wanted)}")
    return fmt, data


@dataclass(frozen=True)
class EvalSources:
    pairs: Path | None = None
    pairs_format: str | None = None
    fashioniq: Path | None = None
    vitonhd: Path | None = None
    world: Path | None = None  # the synthetic world these come from, if any

    def describe(self) -> dict[str, str]:
        out = {"world": str(self.world)} if self.world is not None else {}
        if self.pairs is not None:
            out[self.pairs_format] = str(self.pairs)
        if self.fashioniq is not None:
            out["fashioniq"] = str(self.fashioniq)
        if self.vitonhd is not None:
            out["vitonhd"] = str(self.vitonhd)
        return out

    def check_tasks(self, tasks: Sequence[str]) -> None:
        """DataError naming the task and what it lacks, for the first task the folders cannot serve."""
        for task in tasks:
            if task not in TASKS:
                raise DataError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
            need = NEEDS[task]
            if getattr(self, need) is None:
                given = ", ".join(f"{p} ({f})" for f, p in self.describe().items() if f != "world") or "nothing usable"
                raise DataError(f"task {task} needs {NEED_NAMES[need]} data; given: {given}")

    def load_pairs(self, split: str | None = None) -> list[ImageTextPair]:
        split = split or EVAL_SPLITS[self.pairs_format]
        pairs = PAIR_LOADERS[self.pairs_format](self.pairs, split)
        if not pairs:
            raise DataError(f"{self.pairs}: the {split} split has no image-text pairs")
        return pairs


def find_sources(folders: Sequence[Path]) -> EvalSources:
    """The evaluation sources in `folders` (each a synthetic world or one dataset); two folders of the
    same kind are an error naming both."""
    found: dict[str, tuple[str, Path]] = {}  # kind -> (format, folder)
    worlds = []

    def add(fmt: str, folder: Path) -> None:
        kind = "pairs" if fmt in PAIR_FORMATS else fmt
        if kind in found:
            raise DataError(f"{folder}: a second {NEED_NAMES[kind]} folder beside {found[kind][1]}; give one")
        found[kind] = (fmt, folder)

    if not folders:
        raise DataError("no evaluation data given")
    for folder in map(Path, folders):
        if is_world(folder):
            present = [f for f in WORLD_FORMATS if (folder / f).is_dir()]
            if not present:
                raise DataError(f"{folder}: the world has none of {', '.join(WORLD_FORMATS)}")
            for fmt in present:
                add(fmt, folder / fmt)
            worlds.append(folder)
        else:
            add(detect_format(folder), folder)
    pairs = found.get("pairs")
    return EvalSources(pairs=pairs[1] if pairs else None, pairs_format=pairs[0] if pairs else None,
                       fashioniq=found["fashioniq"][1] if "fashioniq" in found else None,
                       vitonhd=found["vitonhd"][1] if "vitonhd" in found else None,
                       world=worlds[0] if worlds else None)


def fashioniq_categories(root: Path, split: str, wanted: Sequence[str] | None) -> list[str]:
    """The Fashion-IQ categories to evaluate: `wanted` (each must be in the data) or every category
    whose `split` has triplets with targets."""
    present = fashioniq.categories(root)
    if wanted:
        absent = [c for c in wanted if c not in present]
        if absent:
            raise DataError(f"{root}: no Fashion-IQ category {absent[0]!r} (the data has {', '.join(present)})")
        return list(wanted)
    chosen = [c for c in present if any(t.target_id for t in fashioniq.load(root, split, c))]
    if not chosen:
        raise DataError(f"{root}: no {split} triplets with a target in any category")
    return chosen


def tryon_samples(root: Path, split: str, paired: bool) -> list:
    samples = vitonhd.load(root, split, paired=paired)
    if not samples:
        raise DataError(f"{root}: no {split} {'paired' if paired else 'unpaired'} try-on samples")
    return samples
