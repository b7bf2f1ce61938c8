"""A writer for the crash-safety tests: forks children that rewrite a saved model or an index in a loop
until the test SIGKILLs them (a fork per kill: the imports and the tiny model are paid once).

    python tests/helpers/crash_writer.py

Commands on stdin, one per line:
    setup model|build|add WORK
                         write the references under WORK (refA/refB, refX/refY or refX/refXZ) and the
                         target WORK/target; prints `ready <seconds of two writes>` (back to the start)
    go exchange|rename   fork a child that writes forever (rename: replace directories with two renames
                         instead of renameat2's exchange); prints `child <pid>`
    reap                 wait for that child; prints `reaped <signal that ended it, 0 if none>`
    once                 one write, in this process; prints `done`
    quit
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unifashion import storage
from unifashion.search.index_build import add_to_index, build_index
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.models.unified import UniFashion


def tiny_model() -> UniFashion:
    torch.manual_seed(0)
    return UniFashion.from_config("tiny")


def model_states(model: UniFashion) -> tuple[dict, dict]:
    """Two weight sets that differ in every floating tensor: a mix of files would show."""
    a = {k: v.clone() for k, v in model.state_dict().items()}
    b = {k: v + 1 if v.is_floating_point() else v.clone() for k, v in a.items()}
    return a, b


def catalog(work: Path) -> dict[str, list[CatalogItem]]:
    """Three small item sets (x, y, z) over distinct random images."""
    rng = np.random.default_rng(0)
    (work / "images").mkdir(exist_ok=True)
    sets = {}
    for name in "xyz":
        sets[name] = []
        for i in range(4):
            path = work / "images" / f"{name}{i}.png"
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
            sets[name].append(CatalogItem(item_id=f"{name}{i}", product_id=f"{name}{i}", category="tops",
                                          title=f"item {name}{i}", image_path=str(path.resolve())))
    return sets


def build(model, items, out: Path, overwrite: bool = False) -> CatalogIndex:
    return build_index(model, items, out, model_source="tiny", captions=False, overwrite=overwrite, batch_size=4)


def setup(model: UniFashion, a: dict, b: dict, mode: str, work: Path):
    """Write the references and the target; return (seconds of two writes, one write)."""
    target = work / "target"
    work.mkdir(parents=True, exist_ok=True)
    model.load_state_dict(a)
    if mode == "model":
        model.load_state_dict(b)
        model.save_pretrained(work / "refB")
        model.load_state_dict(a)
        model.save_pretrained(work / "refA")
        model.save_pretrained(target)
        turn = [0]

        def step():
            turn[0] += 1
            model.load_state_dict(b if turn[0] % 2 else a)
            model.save_pretrained(target)
        return _two(step), step
    sets = catalog(work)
    if mode == "build":
        build(model, sets["y"], work / "refY")
        build(model, sets["x"], work / "refX")
        build(model, sets["x"], target)

        def step():
            # resume an interrupted build (its chunks are under target/.build), else build the other set
            plan = target / ".build" / "plan.json"
            if plan.exists():
                wanted = "y" if _plan_is(plan, model, sets["y"]) else "x"
            else:
                wanted = "y" if "x0" in CatalogIndex.open(target, verify=False) else "x"
            build(model, sets[wanted], target, overwrite=True)
        return _two(step), step
    if mode == "add":
        build(model, sets["x"], work / "refX")
        add_to_index(model, build(model, sets["x"], work / "refXZ"), sets["z"])
        build(model, sets["x"], target)

        def step():  # x -> x+z -> x (z removed, then compacted) -> x+z ...
            index = CatalogIndex.open(target, verify=False)
            if "z0" in index:
                index.remove([it.item_id for it in sets["z"]])
                index.compact()
            else:
                add_to_index(model, index, sets["z"])
        return _two(step), step
    raise SystemExit(f"unknown mode {mode!r}")


def _two(step) -> float:
    start = time.perf_counter()
    step()
    step()
    return time.perf_counter() - start


def _plan_is(plan: Path, model, items) -> bool:
    import json

    from unifashion.search.index_build import _plan
    from unifashion.search.catalog_index import model_fingerprint

    saved = json.loads(plan.read_text())
    wanted = _plan(model_fingerprint(model), items, saved["captions"])
    return {k: saved.get(k) for k in wanted} == wanted


def main() -> None:
    torch.set_num_threads(1)  # no OpenMP pool: forking stays safe
    model = tiny_model()
    a, b = model_states(model)
    child = step = None
    for line in sys.stdin:
        command = line.split()
        if command[0] == "setup":
            seconds, step = setup(model, a, b, command[1], Path(command[2]))
            print(f"ready {seconds:.4f}", flush=True)
        elif command[0] == "go":
            sys.stdout.flush()
            child = os.fork()
            if child == 0:
                try:
                    storage._exchange_supported = None if command[1] == "exchange" else False
                    while True:
                        step()
                except BaseException:
                    traceback.print_exc()
                    sys.stderr.flush()
                os._exit(1)  # only SIGKILL should end a child
            print(f"child {child}", flush=True)
        elif command[0] == "reap":
            _, status = os.waitpid(child, 0)
            print(f"reaped {os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}", flush=True)
        elif command[0] == "once":
            step()
            print("done", flush=True)
        elif command[0] == "quit":
            return


if __name__ == "__main__":
    main()
