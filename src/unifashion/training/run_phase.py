"""One training phase from the command line's point of view: data -> model -> trainer -> saved model.

`run_phase` picks the data the phase needs from a dataset folder or a synthetic world, builds or
loads the model, trains, and saves the trained model to `out/model` (what `--init` of the next
phase and every other command accept).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from unifashion.processes import process_state

from unifashion.data.training_sets import TrainingData, collate_items
from unifashion.errors import ConfigError
from unifashion.models.model_config import UniFashionConfig
from unifashion.models.unified import UniFashion
from unifashion.training.phases import TrainingPhase
from unifashion.training.trainer import TrainConfig, train

MODEL_DIR = "model"


def phase_data(phase: TrainingPhase, data: Path, *, skip_bad: bool = False) -> TrainingData:
    """The training split of the data `phase` declares, from a dataset folder or a synthetic world."""
    kind = getattr(phase, "training_data", None)
    if kind is None:
        raise ConfigError(f"no data rule for phase {type(phase).__name__}")
    return kind.load(data, skip_bad=skip_bad)


def run_phase(phase: TrainingPhase, data: Path, out: Path, train_config: TrainConfig, *, init: Path | None = None,
              model_config: UniFashionConfig | str = "embedded", resume: bool = False, cache: Path | None = None,
              progress: bool = True, skip_bad: bool = False) -> dict:
    """Train one phase; returns the trainer's summary plus where the model was saved."""
    pd = phase_data(phase, data, skip_bad=skip_bad)
    phase = phase.for_data(pd)
    if init is None:
        torch.manual_seed(train_config.seed)  # the new parts' random init: the same seed, the same model
    model = UniFashion.from_pretrained(init) if init is not None else UniFashion.from_config(model_config)
    phase.prepare_model(model)  # before training (and before a resumed checkpoint is loaded)
    model.use_feature_cache(cache if cache is not None else Path(out) / "feature_cache")
    summary = train(model, phase, pd.dataset, train_config, out, resume=resume, collate_fn=collate_items,
                    progress=progress)
    state = process_state()  # the process group accelerate set up (one process when run plainly)
    phase.finish_model(model, pd, summary)
    model.eval()
    saved = Path(out) / MODEL_DIR
    if state.is_main_process:  # every process holds the same weights after DDP; one writes them
        model.save_pretrained(saved)
    state.wait_for_everyone()
    return {**summary, "settings": asdict(phase), "model": str(saved), "data": pd.source, "examples": len(pd.dataset),
            "processes": state.num_processes, "main_process": state.is_main_process}
