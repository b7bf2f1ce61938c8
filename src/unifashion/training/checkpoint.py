"""Training checkpoints: atomic on disk, verified before anything is loaded, never pickled.

Layout under `out_dir/checkpoints/`:

    step-N/                      one complete checkpoint (a directory appears under this name only by rename)
      model.safetensors          trainable parameters + persistent buffers (the model's state-dict names)
      phase.safetensors          the same for the phase, when the phase is an nn.Module
      optimizer.safetensors      optimizer state tensors, keys "state.<param index>.<name>"
      optimizer.json             the rest of the optimizer state dict (param groups, non-tensor state)
      scheduler.json             lr scheduler state dict
      scaler.json                fp16 GradScaler state (only with mixed_precision fp16)
      rng-<rank>.safetensors     per-process RNG states (python, numpy, torch, cuda)
      trainer.json               step, data position, TrainConfig, phase, process count, log window
      manifest.json              written last: format version, step, sha256 + size of every file above
    step-N.tmp/                  being written (ignored; removed at the next start)
    step-N.del/                  being deleted (ignored; removed at the next start)

Writing: every file is fsynced in `step-N.tmp`, then `manifest.json`, then the directory is renamed to
`step-N` and the parent fsynced. Loading: `verify` checks every file's size and sha256 against the
manifest before a single tensor is read; a mismatch is a one-line `CheckpointError` naming the file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from unifashion.errors import UnifashionError
from unifashion.storage import (MANIFEST, fsync_dir, fsync_file, publish_modes, verify_manifest, write_manifest,
                               write_text_atomic)

FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(UnifashionError):
    """A checkpoint is missing, incomplete, corrupt or does not match the run resuming from it."""


# ---- where checkpoints live ------------------------------------------------------------------


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step}"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (directories named exactly step-N), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def clean_incomplete(root: Path) -> list[Path]:
    """Remove leftovers of interrupted writes (step-N.tmp) and deletions (step-N.del)."""
    root = Path(root)
    removed = []
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and (child.name.endswith(".tmp") or child.name.endswith(".del")):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
    return removed


def begin(root: Path, step: int) -> Path:
    """A fresh, empty `step-N.tmp` directory to write into."""
    tmp = Path(root) / f"step-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, step: int) -> Path:
    """Hash every file of `tmp`, write the manifest, fsync, and rename `tmp` to `step-N`."""
    tmp = Path(tmp)
    write_manifest(tmp, {"format_version": FORMAT_VERSION, "step": step})  # no "format": as checkpoints always were
    publish_modes(tmp)
    final = step_dir(tmp.parent, step)
    if final.exists():  # a checkpoint of the same step from an earlier run: replace it (it is complete too)
        old = final.with_name(final.name + ".del")
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(tmp.parent)
    return final


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (renamed to .del first, so never half-visible)."""
    for _, path in list_checkpoints(root)[:-keep] if keep > 0 else []:
        doomed = path.with_name(path.name + ".del")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    fsync_dir(Path(root))


# ---- writing ---------------------------------------------------------------------------------


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}, str(path),
              metadata=metadata)
    fsync_file(path)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


# ---- reading ---------------------------------------------------------------------------------


def verify(directory: Path) -> dict:
    """The manifest of a complete, intact checkpoint; CheckpointError naming the first bad file otherwise."""
    directory = Path(directory)
    hint = f"delete {directory} to resume from the previous checkpoint"
    manifest = verify_manifest(directory, CheckpointError, hint=hint, format=None, version=FORMAT_VERSION)
    if manifest is None:
        raise CheckpointError(f"{directory / MANIFEST}: missing, the checkpoint is incomplete; {hint}")
    return manifest


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read tensors ({e})".splitlines()[0]) from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read ({e})".splitlines()[0]) from None


# ---- model and optimizer state ---------------------------------------------------------------


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that require grad plus persistent buffers (what training can change)."""
    persistent = set(module.state_dict(keep_vars=True).keys())
    state = {name: p for name, p in module.named_parameters() if p.requires_grad}
    state.update({name: b for name, b in module.named_buffers() if name in persistent})
    return state


def load_trainable_state(module: nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    """Copy `tensors` into `module` in place; the names must be exactly `trainable_state(module)`'s."""
    target = trainable_state(module)
    missing = sorted(set(target) - set(tensors))
    unexpected = sorted(set(tensors) - set(target))
    if missing or unexpected:
        raise CheckpointError(f"{where}: does not match what this phase trains (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    for name, value in tensors.items():
        if value.shape != target[name].shape:
            raise CheckpointError(f"{where}: {name} has shape {tuple(value.shape)}, the model "
                                  f"{tuple(target[name].shape)}")
    with torch.no_grad():
        for name, value in tensors.items():
            target[name].copy_(value)


def optimizer_to_files(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split a torch optimizer state dict into tensors (safetensors) and JSON."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: dict[str, torch.Tensor], data: dict, template: dict) -> dict:
    """Inverse of `optimizer_to_files`; `template` (the live optimizer's state dict) restores tuple values."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entries in data["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group, live in zip(data["param_groups"], template["param_groups"]):
        groups.append({k: tuple(v) if isinstance(live.get(k), tuple) and isinstance(v, list) else v
                       for k, v in group.items()})
    if len(data["param_groups"]) != len(template["param_groups"]):
        raise CheckpointError(f"optimizer: {len(data['param_groups'])} parameter groups saved, the phase has "
                              f"{len(template['param_groups'])}")
    return {"state": state, "param_groups": groups}
