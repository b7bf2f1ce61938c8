"""One training phase from the command line's point of view: data -> model -> trainer -> saved model.

`run_phase` picks the data the phase needs from a dataset folder or a synthetic world, builds or
loads the model, trains, and saves the trained model to `out/model` (what `--init` of the next
phase and every other command accept).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState

from unifashion.data.formats import CAPTION_STYLE, catalog, fashion200k, fashiongen, fashioniq, vitonhd
from unifashion.data.formats.detect import detect_format
from unifashion.data.training_sets import ComposedTriplets, ImageTextPairs, TryOnSamples, collate_items
from unifashion.errors import ConfigError, DataError
from unifashion.models.unified import UniFashion, UniFashionConfig
from unifashion.training.phases import (AutoencoderPretraining, ComposedFinetuning, GarmentGeneration,
                                        GenerativeAdaptation, QFormerPretraining)
from unifashion.training.trainer import TrainConfig, train

PAIR_PHASES = (AutoencoderPretraining, QFormerPretraining, GenerativeAdaptation)
MODEL_DIR = "model"


@dataclass(frozen=True)
class PhaseData:
    dataset: torch.utils.data.Dataset
    style: str | None  # caption style of the texts (pairs only)
    source: str  # the folder read


def _format_dir(data: Path, wanted: tuple[str, ...]) -> tuple[str, Path]:
    """The folder of the first wanted format: `data` itself or a synthetic world's subfolder."""
    data = Path(data)
    if (data / "manifest.json").is_file():  # a synthetic world
        for fmt in wanted:
            if (data / fmt).is_dir():
                return fmt, data / fmt
        raise DataError(f"{data}: the world has none of {', '.join(wanted)}")
    fmt = detect_format(data)
    if fmt not in wanted:
        raise DataError(f"{data}: is {fmt} data; this phase needs {' or '.join(wanted)}")
    return fmt, data


def phase_data(phase, data: Path, *, skip_bad: bool = False) -> PhaseData:
    if isinstance(phase, PAIR_PHASES):
        fmt, root = _format_dir(data, ("catalog", "fashiongen", "fashion200k"))
        loader = {"catalog": lambda: catalog.load(root, split="train", skip_bad=skip_bad),
                  "fashiongen": lambda: fashiongen.load(root, "train", skip_bad=skip_bad),
                  "fashion200k": lambda: fashion200k.load(root, "train", skip_bad=skip_bad)}[fmt]
        return PhaseData(ImageTextPairs(loader()), CAPTION_STYLE[fmt], str(root))
    if isinstance(phase, ComposedFinetuning):
        _, root = _format_dir(data, ("fashioniq",))
        triplets = fashioniq.load(root, "train", skip_bad=skip_bad)
        return PhaseData(ComposedTriplets(triplets, fashioniq.load_image_captions(root)), "detailed", str(root))
    if isinstance(phase, GarmentGeneration):
        _, root = _format_dir(data, ("vitonhd",))
        return PhaseData(TryOnSamples(vitonhd.load(root, "train", paired=True, skip_bad=skip_bad)), None, str(root))
    raise ConfigError(f"no data rule for phase {type(phase).__name__}")


def run_phase(phase, data: Path, out: Path, train_config: TrainConfig, *, init: Path | None = None,
              model_config: UniFashionConfig | str = "embedded", resume: bool = False, cache: Path | None = None,
              progress: bool = True, skip_bad: bool = False) -> dict:
    """Train one phase; returns the trainer's summary plus where the model was saved."""
    pd = phase_data(phase, data, skip_bad=skip_bad)
    if isinstance(phase, GenerativeAdaptation) and pd.style != phase.caption_style:
        from dataclasses import replace

        phase = replace(phase, caption_style=pd.style)  # the data's own caption style
    if init is None:
        torch.manual_seed(train_config.seed)  # the new parts' random init: the same seed, the same model
    model = UniFashion.from_pretrained(init) if init is not None else UniFashion.from_config(model_config)
    if isinstance(phase, GarmentGeneration):
        model.make_generator_inpainting()  # before training (and before a resumed checkpoint is loaded)
    model.use_feature_cache(cache if cache is not None else Path(out) / "feature_cache")
    summary = train(model, phase, pd.dataset, train_config, out, resume=resume, collate_fn=collate_items,
                    progress=progress)
    state = PartialState()  # the process group accelerate set up (one process when run plainly)
    if isinstance(phase, AutoencoderPretraining):
        # latents must have unit variance for the diffusion schedule: calibrate on training images
        sample = [pd.dataset[i].image for i in range(min(64, len(pd.dataset)))]
        with torch.no_grad():
            summary["vae_scaling_factor"] = model.generator.calibrate_scaling_factor(model.generator_pixels(sample))
    model.eval()
    saved = Path(out) / MODEL_DIR
    if state.is_main_process:  # every process holds the same weights after DDP; one writes them
        model.save_pretrained(saved)
    state.wait_for_everyone()
    return {**summary, "settings": asdict(phase), "model": str(saved), "data": pd.source, "examples": len(pd.dataset),
            "processes": state.num_processes, "main_process": state.is_main_process}
