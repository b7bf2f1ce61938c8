"""Map-style datasets that turn typed samples into training items (raw images and texts), and the
kinds of training data a phase can ask for (each read from a dataset folder or a synthetic world).

Encoding happens in the phase's loss computation (through the model's feature cache), so these stay
format-agnostic: any loader's `ImageTextPair`, `Triplet` or `TryOnSample` list works.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from unifashion.data.formats import CAPTION_STYLE, fashioniq, vitonhd
from unifashion.data.samples import ImageTextPair, TryOnSample, Triplet
from unifashion.data.sources import PAIR_LOADERS, format_folder
from unifashion.errors import DataError


def modification_text(captions: Sequence[str], order: int) -> str:
    """Fashion-IQ's query text; `order` picks one of the four training orderings (CLIP4Cir / SPRC):
    0: "C1 and c2" (the evaluation form), 1: "C2 and c1", 2: "C1", 3: "C2"."""
    c = [s.strip(".?, ") for s in captions]
    if len(c) == 1:
        return c[0].capitalize()
    first, second = (c[0], c[1]) if order in (0, 2) else (c[1], c[0])
    return f"{first.capitalize()} and {second}" if order < 2 else first.capitalize()


@dataclass(frozen=True)
class PairItem:
    image: Image.Image
    text: str
    product_id: int  # items of one product are positives of each other (ITC targets)


class ImageTextPairs(Dataset):
    """Image-caption pairs for phase 1 (ITC, ITM, ITG, q2I)."""

    def __init__(self, samples: Sequence[ImageTextPair]):
        if not samples:
            raise DataError("no image-text pairs to train on")
        self.samples = list(samples)
        ids = {pid: i for i, pid in enumerate(dict.fromkeys(s.product_id for s in self.samples))}
        self._product_index = [ids[s.product_id] for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> PairItem:
        s = self.samples[i]
        return PairItem(s.image.load().convert("RGB"), s.caption, self._product_index[i])


@dataclass(frozen=True)
class TripletItem:
    reference: Image.Image
    modification: str
    target: Image.Image
    target_caption: str  # the target's own description (Z_C), from the gallery captions
    target_id: int


class ComposedTriplets(Dataset):
    """Fashion-IQ triplets for phase 2; each triplet appears in its four caption orders."""

    def __init__(self, triplets: Sequence[Triplet], target_captions: dict[str, str]):
        usable = [t for t in triplets if t.target is not None]
        if not usable:
            raise DataError("no composed-retrieval triplets with targets to train on")
        missing = [t.target_id for t in usable if t.target_id not in target_captions]
        if missing:
            raise DataError(f"no gallery caption for target image {missing[0]} ({len(missing)} targets lack one)")
        self.triplets = usable
        self.captions = target_captions
        ids = {name: i for i, name in enumerate(sorted({t.target_id for t in usable}))}
        self._target_index = [ids[t.target_id] for t in usable]

    def __len__(self) -> int:
        return 4 * len(self.triplets)

    def __getitem__(self, i: int) -> TripletItem:
        t = self.triplets[i // 4]
        return TripletItem(t.reference.load().convert("RGB"), modification_text(t.modifications, i % 4),
                           t.target.load().convert("RGB"), self.captions[t.target_id], self._target_index[i // 4])


@dataclass(frozen=True)
class TryOnItem:
    sample: TryOnSample  # whole: the model's try-on helpers take samples


class TryOnSamples(Dataset):
    """Try-on / design samples for the generation fine-tuning (paper Figure 3)."""

    def __init__(self, samples: Sequence[TryOnSample]):
        if not samples:
            raise DataError("no try-on samples to train on")
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> TryOnItem:
        return TryOnItem(self.samples[i])


def collate_items(items: list) -> dict:
    """A batch as lists per field (images stay PIL: the model's feature cache encodes them)."""
    if not items:
        raise DataError("empty batch")
    fields = items[0].__dataclass_fields__
    batch = {name: [getattr(it, name) for it in items] for name in fields}
    for name in ("product_id", "target_id"):
        if name in batch:
            batch[name] = torch.tensor(batch[name], dtype=torch.long)  # (B,)
    return batch


@dataclass(frozen=True)
class TrainingData:
    dataset: Dataset
    style: str | None  # caption style of the texts (image-text pairs only)
    source: str  # the folder read


@dataclass(frozen=True)
class TrainingDataKind:
    """One kind of data a training phase trains on: the formats that hold it (in a synthetic world
    the first one present is read) and how a folder of one of them becomes its training split."""

    formats: tuple[str, ...]
    read: Callable[[str, Path, bool], TrainingData]  # (format, folder, skip_bad) -> the training split

    def load(self, data: Path, *, skip_bad: bool = False) -> TrainingData:
        fmt, root = format_folder(data, self.formats)
        return self.read(fmt, root, skip_bad)


def _pairs(fmt: str, root: Path, skip_bad: bool) -> TrainingData:
    return TrainingData(ImageTextPairs(PAIR_LOADERS[fmt](root, "train", skip_bad=skip_bad)), CAPTION_STYLE[fmt],
                        str(root))


def _triplets(fmt: str, root: Path, skip_bad: bool) -> TrainingData:
    triplets = fashioniq.load(root, "train", skip_bad=skip_bad)
    return TrainingData(ComposedTriplets(triplets, fashioniq.load_image_captions(root)), "detailed", str(root))


def _tryon(fmt: str, root: Path, skip_bad: bool) -> TrainingData:
    return TrainingData(TryOnSamples(vitonhd.load(root, "train", paired=True, skip_bad=skip_bad)), None, str(root))


IMAGE_TEXT_PAIRS = TrainingDataKind(("catalog", "fashiongen", "fashion200k"), _pairs)
FASHIONIQ_TRIPLETS = TrainingDataKind(("fashioniq",), _triplets)
VITONHD_TRYON = TrainingDataKind(("vitonhd",), _tryon)
