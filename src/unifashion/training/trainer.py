"""A generic trainer on HF Accelerate: one phase object says what trains and which losses; this file
does the rest (optimizer, schedule, accumulation, clipping, mixed precision, logging, checkpoints)
and resumes exactly where a run stopped.

What accelerate prepares: a small wrapper module `PhaseModule(model, phase)` whose `forward(batch)`
is `phase.losses(model, batch)`, and the AdamW optimizer. Wrapping matters in distributed runs:
DDP only synchronises gradients for computations that go through the wrapped module's `forward`,
and phases call arbitrary model methods (`model.qformer.image_features(...)`), so the phase's whole
loss computation is that forward. DDP is built with `find_unused_parameters=True` because a phase's
loss need not touch every trainable parameter on every batch; frozen parameters (requires_grad
False) are ignored by DDP. Checked on CPU/gloo with 2 processes.

Not prepared, on purpose:
- the data loader: `EpochBatches` (state.py) shards each global batch over the processes itself and
  is a pure function of (seed, epoch, start batch), so resuming skips consumed batches at index
  level (nothing is loaded for them). A fresh DataLoader is made per epoch with its own seeded
  generator, so creating one never draws from the global torch RNG.
- the lr scheduler: accelerate's wrapper steps a scheduler once per process per step; here the
  schedule is defined over optimizer steps and stepped once per optimizer step, so the lr is a pure
  function of the step whatever the process count.

Batch size: `batch_size` is per process per micro-batch; one optimizer step sees
batch_size x grad_accumulation x processes examples. Several CPU processes: `accelerate launch
--multi_gpu --num_processes N script.py` (it goes through torchrun; with no GPU the Accelerator here
uses gloo); `--cpu --num_processes N` starts a single process unless mpirun is set up.

Exact resume: a resumed run reproduces an uninterrupted one bit for bit (same process count, same
threads) because the checkpoint holds the trainable weights, optimizer, scheduler, every RNG state of
every process, the data position and the half-filled metrics window, and because the RNGs are seeded
(fresh run) or restored (resume) as the very last thing before the first batch: everything imported
lazily that draws random numbers (rich.style does, at import) is imported before that point. Dataset
randomness (augmentation) stays exact only when derived from the item index, not from worker RNGs.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, send_to_device, set_seed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset

from unifashion.config import to_dict
from unifashion.errors import ConfigError, UnifashionError
from unifashion.training import checkpoint as ckpt
from unifashion.training.resume_state import EpochBatches, TrainerState, batches_per_epoch, capture_rng, restore_rng

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"


class TrainingError(UnifashionError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and the loss terms."""


@runtime_checkable
class Phase(Protocol):
    """What one training phase trains and how (implemented in phases.py)."""

    name: str  # recorded in checkpoints; resuming with another phase is an error
    loss_weights: dict[str, float]  # weight per *_loss term in the summed loss; a missing term weighs 1.0

    def parameter_groups(self, model: nn.Module) -> list[dict]:
        """torch optimizer param groups ({"params": [...], "lr": ..., optional "weight_decay": ...});
        freezes every parameter not in them (requires_grad False). Called after `model.train()`: a
        phase that wants frozen parts without dropout calls their `.eval()` here."""
        ...

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Unweighted scalar loss terms, keys ending in `_loss`, the same keys on every batch."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # optimizer steps in total (a resumed run ends at the same step)
    batch_size: int  # examples per process per micro-batch
    grad_accumulation: int = 1  # micro-batches per optimizer step
    seed: int = 0  # data order, dropout and every other random draw (+ process index)
    warmup_ratio: float = 0.03  # linear warmup over this fraction of `steps` (paper: 0.03)
    lr_schedule: Literal["cosine", "constant"] = "cosine"  # after warmup: cosine decay to 0, or constant
    weight_decay: float = 0.05  # AdamW weight decay for groups that do not set their own
    max_grad_norm: float = 1.0  # clip the global gradient norm to this (0 turns clipping off)
    checkpoint_every: int = 100  # optimizer steps between checkpoints (one more is written at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    log_every: int = 10  # optimizer steps per metrics.jsonl line (losses averaged over them)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # autocast + loss scaling; GPUs only
    num_workers: int = 0  # DataLoader worker processes

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accumulation", "checkpoint_every", "keep_checkpoints", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{name}: expected a positive integer, got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"train.warmup_ratio: expected a value in [0, 1), got {self.warmup_ratio!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"train.lr_schedule: {self.lr_schedule!r} is not 'cosine' or 'constant'")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"train.mixed_precision: {self.mixed_precision!r} is not 'no', 'fp16' or 'bf16'")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("train.weight_decay and train.max_grad_norm must not be negative")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers: expected >= 0, got {self.num_workers}")

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_ratio * self.steps))


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the base lr for optimizer step `step` (0-based): linear warmup reaching 1.0 on
    step warmup-1 (the first step already learns), then cosine to 0 at `total` or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class PhaseModule(nn.Module):
    """model + phase as one module whose forward is the phase's losses: what accelerate prepares."""

    def __init__(self, model: nn.Module, phase: Phase):
        super().__init__()
        self.model = model
        if isinstance(phase, nn.Module):
            self.phase = phase  # loss modules with parameters or buffers move and synchronise with the model
        else:
            object.__setattr__(self, "phase", phase)

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.phase.losses(self.model, batch)


def train(model: nn.Module, phase: Phase, dataset: Dataset, config: TrainConfig, out_dir: str | Path, *,
          resume: bool = False, collate_fn: Callable | None = None, progress: bool = True) -> dict:
    """Train `model` with `phase` on `dataset` until `config.steps` optimizer steps are done.

    Writes `out_dir/metrics.jsonl` and `out_dir/checkpoints/step-N`. With `resume`, continues from the
    newest checkpoint (same config and phase required) or starts fresh when there is none; without
    it, an `out_dir` holding an earlier run is an error. Returns a summary: phase, steps, start_step,
    losses (the last step's terms and total), seconds (this run), total_seconds, checkpoint, metrics.
    """
    out_dir = Path(out_dir)
    ck_root = out_dir / CHECKPOINTS_DIR
    metrics_path = out_dir / METRICS_FILE
    accelerator = _accelerator(config)
    main = accelerator.is_main_process
    world = accelerator.num_processes

    # 1. the run to continue, if any (checked before anything heavy happens)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_incomplete(ck_root)
    accelerator.wait_for_everyone()
    existing = ckpt.list_checkpoints(ck_root)
    if not resume and (existing or metrics_path.exists()):
        what = existing[-1][1] if existing else metrics_path
        raise ConfigError(f"{out_dir}: holds an earlier run ({what}); resume it or choose an empty output directory")
    resume_from = existing[-1][1] if resume and existing else None
    saved = None
    if resume_from is not None:
        ckpt.verify(resume_from)
        saved = ckpt.read_json(resume_from / "trainer.json")
        _check_same_run(saved, config, phase, world, resume_from)
    batches_per_epoch(len(dataset), config.batch_size, world)  # a dataset smaller than one batch fails here

    # 2. what trains: the phase's groups, nothing else (the phase may put frozen parts back in eval mode)
    module = PhaseModule(model, phase)
    module.train()
    groups = phase.parameter_groups(model)
    trainable = _check_groups(module, groups, phase.name)
    try:
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"phase {phase.name}: invalid parameter groups ({e})") from None
    scheduler = LambdaLR(optimizer, partial(lr_factor, warmup=config.warmup_steps, total=config.steps,
                                            schedule=config.lr_schedule))
    prepared, optimizer = accelerator.prepare(module, optimizer)

    # 3. state: restored from the checkpoint (RNG states just before the loop), or fresh
    rng = None
    if resume_from is not None:
        state, rng = _load(resume_from, saved, accelerator, module, optimizer, scheduler)
    else:
        state = TrainerState()
    start_step = state.step
    if main:
        _truncate_metrics(metrics_path, state.step)
    accelerator.wait_for_everyone()

    # 4. the loop
    weights = dict(phase.loss_weights)
    loss_keys: list[str] | None = saved.get("loss_keys") if saved else None
    started = time.perf_counter()
    elapsed_before = state.elapsed
    step_sums: dict[str, float] = {}
    micro = 0
    last: dict[str, float] = {}
    final_dir = resume_from
    bar = _progress(progress and main)
    with bar:
        task = bar.add_task(phase.name, total=config.steps, completed=state.step, losses="")
        # Seed or restore the RNGs last: anything between here and the first batch that drew random
        # numbers (a lazy import does: rich.style calls getrandbits) would break an exact resume.
        if rng is None:
            set_seed(config.seed, device_specific=True)  # seed + process index
        else:
            _restore_rng(*rng)
        while state.step < config.steps:
            loader = _loader(dataset, config, state, collate_fn, accelerator)
            for batch in loader:
                batch = send_to_device(batch, accelerator.device)
                with accelerator.accumulate(prepared):
                    terms = prepared(batch)
                    loss_keys = _check_terms(terms, loss_keys, weights, phase.name)
                    total = sum(weights.get(k, 1.0) * terms[k] for k in loss_keys)
                    values = accelerator.reduce(torch.stack([terms[k].detach().float() for k in loss_keys]),
                                                reduction="mean").tolist()  # (K,) averaged over processes
                    if not all(math.isfinite(v) for v in values):
                        shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(loss_keys, values))
                        raise TrainingError(f"phase {phase.name}, step {state.step + 1}: non-finite loss "
                                            f"({shown})")
                    accelerator.backward(total)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for k, v in zip(loss_keys, values):
                    step_sums[k] = step_sums.get(k, 0.0) + v
                micro += 1
                state.batch += 1
                if state.batch == loader.batch_sampler.num_batches:  # epoch done: the next starts at batch 0
                    state.epoch, state.batch = state.epoch + 1, 0
                if not accelerator.sync_gradients:
                    continue

                # one optimizer step done
                lr = scheduler.get_last_lr()[0]  # the lr this step used
                scheduler.step()
                state.step += 1
                last = {k: step_sums[k] / micro for k in loss_keys}
                last["total"] = sum(weights.get(k, 1.0) * last[k] for k in loss_keys)
                step_sums, micro = {}, 0
                for k in loss_keys:
                    state.window_sums[k] = state.window_sums.get(k, 0.0) + last[k]
                state.window_steps += 1
                state.elapsed = elapsed_before + time.perf_counter() - started
                if state.step % config.log_every == 0 or state.step == config.steps:
                    if main:
                        _log(metrics_path, state, loss_keys, weights, lr)
                    state.window_sums, state.window_steps = {}, 0
                if state.step % config.checkpoint_every == 0 or state.step == config.steps:
                    final_dir = _save(ck_root, state, accelerator, module, optimizer, scheduler, config, phase,
                                      loss_keys)
                bar.update(task, completed=state.step,
                           losses="  ".join(f"{k.removesuffix('_loss')} {v:.4f}" for k, v in last.items()))
                if state.step >= config.steps:
                    break
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - started
    return {"phase": phase.name, "steps": state.step, "start_step": start_step, "losses": last,
            "seconds": seconds, "total_seconds": elapsed_before + seconds,
            "checkpoint": str(final_dir) if final_dir else None, "metrics": str(metrics_path)}


# ---- setup -----------------------------------------------------------------------------------


def _accelerator(config: TrainConfig):
    gpu = torch.cuda.is_available()
    if config.mixed_precision != "no" and not gpu:
        raise ConfigError(f"train.mixed_precision {config.mixed_precision!r} needs a GPU; use 'no' on CPU")
    try:
        return Accelerator(gradient_accumulation_steps=config.grad_accumulation,
                           mixed_precision=config.mixed_precision, cpu=not gpu,
                           kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    except ValueError as e:  # e.g. a second run in one process asking for another precision
        raise ConfigError(f"accelerate: {e}".splitlines()[0]) from None


def _check_groups(module: nn.Module, groups: list[dict], phase: str) -> list[nn.Parameter]:
    if not groups or not all(isinstance(g, dict) and g.get("params") for g in groups):
        raise ConfigError(f"phase {phase}: parameter_groups must be a non-empty list of groups with 'params'")
    in_groups = []
    for i, g in enumerate(groups):
        if "lr" not in g:
            raise ConfigError(f"phase {phase}: parameter group {i} has no 'lr'")
        g["params"] = list(g["params"])
        in_groups.extend(g["params"])
    names = {id(p): n for n, p in module.named_parameters()}
    ids = {id(p) for p in in_groups}
    for p in in_groups:
        if not p.requires_grad:
            raise ConfigError(f"phase {phase}: parameter {names.get(id(p), '?')} is in a group but frozen")
    for n, p in module.named_parameters():
        if p.requires_grad and id(p) not in ids:
            raise ConfigError(f"phase {phase}: parameter {n} requires grad but is in no parameter group "
                              "(freeze it or give it a group)")
    return in_groups


def _check_same_run(saved: dict, config: TrainConfig, phase: Phase, world: int, where: Path) -> None:
    now = to_dict(config)
    differ = [f"{k}: {saved['config'].get(k)!r} -> {now[k]!r}" for k in now if saved["config"].get(k) != now[k]]
    if differ:
        raise ConfigError(f"{where}: the checkpoint was written with another training config ({'; '.join(differ)}); "
                          "resume with the same config or start a new output directory")
    if saved["phase"] != phase.name:
        raise ConfigError(f"{where}: the checkpoint is from phase {saved['phase']!r}, not {phase.name!r}")
    if saved["num_processes"] != world:
        raise ConfigError(f"{where}: the checkpoint was written by {saved['num_processes']} process(es), "
                          f"this run has {world}; the data order depends on it")


def _check_terms(terms: Any, keys: list[str] | None, weights: dict[str, float], phase: str) -> list[str]:
    if not isinstance(terms, dict):
        raise TrainingError(f"phase {phase}: losses() returned a {type(terms).__name__}, not a dict of *_loss tensors")
    found = sorted(k for k in terms if k.endswith("_loss"))
    if not found:
        raise TrainingError(f"phase {phase}: losses() returned no *_loss term (got {sorted(terms)})")
    if keys is None:
        unknown = sorted(k for k, w in weights.items() if w and k not in found)  # a 0-weight term may be skipped
        if unknown:
            raise ConfigError(f"phase {phase}: loss_weights names {unknown[0]!r}, which losses() does not return "
                              f"(it returns {', '.join(found)})")
        return found
    if found != keys:
        raise TrainingError(f"phase {phase}: losses() returned {found}, earlier steps returned {keys}; "
                            "return the same terms on every batch")
    return keys


def _loader(dataset: Dataset, config: TrainConfig, state: TrainerState, collate_fn, accelerator) -> DataLoader:
    sampler = EpochBatches(len(dataset), config.batch_size, seed=config.seed, epoch=state.epoch, start=state.batch,
                           num_processes=accelerator.num_processes, rank=accelerator.process_index)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + state.epoch)  # worker seeds; not the global RNG
    kwargs = {} if collate_fn is None else {"collate_fn": collate_fn}
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers, generator=generator,
                      pin_memory=accelerator.device.type == "cuda", **kwargs)


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=Console(stderr=True),
                    disable=not enabled)


# ---- metrics ---------------------------------------------------------------------------------


def _log(path: Path, state: TrainerState, keys: list[str], weights: dict[str, float], lr: float) -> None:
    means = {k: state.window_sums[k] / state.window_steps for k in keys}
    row = {"step": state.step, "epoch": state.epoch, **means,
           "total": sum(weights.get(k, 1.0) * means[k] for k in keys), "lr": lr, "seconds": round(state.elapsed, 3)}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep only the lines up to `step` (those a resumed run must not write again); drop a torn last line."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- checkpoints -----------------------------------------------------------------------------


def _save(root: Path, state: TrainerState, accelerator, module: nn.Module, optimizer, scheduler,
          config: TrainConfig, phase: Phase, loss_keys: list[str]) -> Path:
    """Every process writes its RNG states; the main process writes the rest and commits."""
    main = accelerator.is_main_process
    tmp = root / f"step-{state.step}.tmp"
    if main:
        ckpt.begin(root, state.step)
    accelerator.wait_for_everyone()
    tensors, meta = capture_rng()
    ckpt.write_tensors(tmp / f"rng-{accelerator.process_index}.safetensors", tensors, meta)
    accelerator.wait_for_everyone()
    final = ckpt.step_dir(root, state.step)
    if main:
        ckpt.write_tensors(tmp / "model.safetensors", ckpt.trainable_state(module.model))
        if isinstance(module.phase, nn.Module):
            ckpt.write_tensors(tmp / "phase.safetensors", ckpt.trainable_state(module.phase))
        opt_tensors, opt_json = ckpt.optimizer_to_files(optimizer.state_dict())
        ckpt.write_tensors(tmp / "optimizer.safetensors", opt_tensors)
        ckpt.write_json(tmp / "optimizer.json", opt_json)
        ckpt.write_json(tmp / "scheduler.json", scheduler.state_dict())
        if accelerator.scaler is not None:
            ckpt.write_json(tmp / "scaler.json", accelerator.scaler.state_dict())
        ckpt.write_json(tmp / "trainer.json", {"phase": phase.name, "config": to_dict(config),
                                               "num_processes": accelerator.num_processes,
                                               "loss_keys": loss_keys, "state": state.to_dict()})
        ckpt.commit(tmp, state.step)
        ckpt.prune(root, config.keep_checkpoints)
    accelerator.wait_for_everyone()
    return final


def _load(directory: Path, saved: dict, accelerator, module: nn.Module, optimizer,
          scheduler) -> tuple[TrainerState, tuple]:
    """Restore weights, optimizer, scheduler and scaler from a verified checkpoint; return the trainer
    state and this process's RNG states (restored later, by `_restore_rng`)."""
    for name, part in (("model", module.model), ("phase", module.phase)):
        if isinstance(part, nn.Module):
            tensors, _ = ckpt.read_tensors(directory / f"{name}.safetensors")
            ckpt.load_trainable_state(part, tensors, directory / f"{name}.safetensors")
    opt_tensors, _ = ckpt.read_tensors(directory / "optimizer.safetensors")
    opt_state = ckpt.optimizer_from_files(opt_tensors, ckpt.read_json(directory / "optimizer.json"),
                                          optimizer.state_dict())
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError) as e:
        raise ckpt.CheckpointError(f"{directory / 'optimizer.json'}: does not fit this phase's optimizer "
                                   f"({e})") from None
    scheduler.load_state_dict(ckpt.read_json(directory / "scheduler.json"))
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(ckpt.read_json(directory / "scaler.json"))
    rng_file = directory / f"rng-{accelerator.process_index}.safetensors"
    rng, meta = ckpt.read_tensors(rng_file)
    return TrainerState.from_dict(saved["state"]), (rng_file, rng, meta)


def _restore_rng(path: Path, tensors: dict, meta: dict) -> None:
    try:
        restore_rng(tensors, meta)
    except (KeyError, ValueError, RuntimeError) as e:
        raise ckpt.CheckpointError(f"{path}: cannot restore RNG states ({e})".splitlines()[0]) from None


__all__ = ["Phase", "PhaseModule", "TrainConfig", "TrainingError", "lr_factor", "train"]
