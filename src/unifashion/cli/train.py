"""`unifashion train`: one training phase."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unifashion.cli.options import parse_overrides
from unifashion.cli.output import err, print_json, progress_shown
from unifashion.errors import ConfigError, UnifashionError


def train(
    data: Annotated[Path, typer.Option(help="A dataset folder (catalog, FashionGen, Fashion200K, Fashion-IQ) or a synthetic world.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, metrics.jsonl, and the trained model in OUT/model.")],
    phase: Annotated[str, typer.Option(help="vae | phase1a | phase1b | phase2 | tryon (see training/phases.py).")],
    init: Annotated[Path | None, typer.Option(help="Start from this saved model (e.g. the previous phase's OUT/model).")] = None,
    config: Annotated[str, typer.Option(help="Model config when not --init: embedded, quickstart, paper, tiny or a YAML/JSON file.")] = "embedded",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a model config value (not with --init): KEY=VALUE.")] = None,
    phase_set: Annotated[list[str] | None, typer.Option("--phase-set", help="Override a phase setting (training/phases.py): KEY=VALUE, e.g. train_diffusion=false.")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per process per micro-batch.", min=1)] = 32,
    grad_accumulation: Annotated[int, typer.Option("--grad-accumulation", help="Micro-batches per optimizer step.", min=1)] = 1,
    lr: Annotated[float | None, typer.Option(help="Learning rate of the phase's main group (default: the phase's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data order and every random draw.")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between checkpoints.", min=1)] = 100,
    mixed_precision: Annotated[str, typer.Option("--mixed-precision", help="no | fp16 | bf16 (GPUs).")] = "no",
    resume: Annotated[bool, typer.Option(help="Continue the run in OUT from its newest checkpoint.")] = False,
    cache: Annotated[Path | None, typer.Option(help="Frozen image-encoder feature cache (default OUT/feature_cache).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and report bad data items.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train one phase on one CPU, or on many GPUs/machines under `accelerate launch -m unifashion train ...`."""
    from unifashion.models.model_config import load_config
    from unifashion.training import phases
    from unifashion.training.run_phase import run_phase
    from unifashion.training.trainer import TrainConfig

    try:
        phase_class = phases.phase_by_name(phase)
    except ConfigError as e:
        raise UnifashionError(f"--phase {phase!r}: {e}") from None
    settings = parse_overrides(phase_set or [], flag="--phase-set", example="train_diffusion=false")
    if lr is not None:
        settings[phase_class.main_lr] = lr
    chosen = phases.with_settings(phase_class(), settings)
    if init is not None and set_:
        raise UnifashionError(f"--set {set_[0]!r}: model config overrides apply to a new model (--config), "
                              f"not to --init {init}, whose config is saved with it")
    model_config = None if init is not None else load_config(config, parse_overrides(set_ or []), overrides_flag="--set")
    train_config = TrainConfig(steps=steps, batch_size=batch_size, grad_accumulation=grad_accumulation, seed=seed,
                               checkpoint_every=checkpoint_every, mixed_precision=mixed_precision)
    summary = run_phase(chosen, data, out, train_config, init=init, model_config=model_config, resume=resume,
                        cache=cache, progress=progress_shown(as_json), skip_bad=skip_bad)
    if not summary.pop("main_process"):  # under accelerate launch, the main process reports
        return
    if as_json:
        print_json(summary)
    else:
        err.print(f"trained {phase} for {summary['steps']} steps; model saved to {summary['model']}")
