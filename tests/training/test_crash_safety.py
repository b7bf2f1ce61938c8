"""Crash safety: SIGKILL at random points while a model is saved over another, an index rebuilt over
another or changed in place leaves the previous or the new complete version, never a mix; damaged model
files are refused, by name, before anything is built.

The killed writers are children forked by tests/helpers/crash_writer.py (imports and model paid once per module)."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unifashion import storage
from unifashion.errors import ConfigError, DataError
from unifashion.storage import clean_leftovers, recover_dir, replace_dir, sha256_file
from unifashion.search.catalog_index import CatalogIndex, CatalogItem
from unifashion.models import unified
from unifashion.models.unified import UniFashion
from unifashion.training import checkpoint

WRITER = Path(__file__).resolve().parents[1] / "helpers" / "crash_writer.py"
ROUNDS = 5  # kills per test, at seeded random points; alternately exchanging and renaming


# ---- SIGKILL at random points -------------------------------------------------------------------


class Writer:
    """tests/helpers/crash_writer.py in a subprocess, driven line by line; killed if it hangs."""

    def __init__(self, log: Path, deadline: float = 300.0):
        self.log = log
        self.stderr = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, str(WRITER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        self.watchdog = threading.Timer(deadline, self.proc.kill)
        self.watchdog.start()

    def expect(self, word: str) -> str:
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, f"writer said {line}, expected {word}:\n{self.log.read_text()[-3000:]}"
        return line[1] if len(line) > 1 else ""

    def send(self, command: str, reply: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.expect(reply)

    def close(self) -> None:
        self.proc.kill()  # nothing of its own to finish
        self.proc.wait(timeout=30)
        self.watchdog.cancel()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    w = Writer(tmp_path_factory.mktemp("writer") / "writer.log")
    yield w
    w.close()


def kill_at_random_points(writer: Writer, mode: str, work: Path, seed: int, rounds: int, check) -> list:
    """`rounds` times: fork a writer child, SIGKILL it after a random delay (0 to 3 writes), then
    `check()` the target. Alternate rounds replace directories with two renames instead of an exchange.
    Finally one complete write, after which no leftover of the killed writers may remain."""
    seconds = float(writer.send(f"setup {mode} {work}", "ready"))
    rng = random.Random(seed)
    seen = []
    for r in range(rounds):
        pid = int(writer.send(f"go {'exchange' if r % 2 == 0 else 'rename'}", "child"))
        time.sleep(rng.uniform(0.0, 1.5 * seconds))  # `seconds`: two writes
        os.kill(pid, signal.SIGKILL)
        assert writer.send("reap", "reaped") == str(int(signal.SIGKILL)), writer.log.read_text()[-3000:]
        left = sorted(p.name.rsplit("-", 1)[0] for p in work.iterdir() if p.name.startswith("target"))
        seen.append((check(), left))
    writer.send("once", "done")
    print(mode, "killed with, then recovered to:", seen)
    target = work / "target"
    assert not [p.name for p in work.iterdir() if p.name.startswith("target.")]  # no .new-/.old- left
    if (target / "segments").is_dir():
        named = {s["name"] for s in CatalogIndex.open(target).manifest["segments"]}
        assert {p.name for p in (target / "segments").iterdir()} == named  # no orphan or temporary segment
    return seen


def tree(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def index_content(directory: Path) -> dict:
    """item id -> (item fields, its image vectors' bytes) of the live items, checksums verified."""
    index = CatalogIndex.open(directory, verify=True)
    return {it.item_id: (asdict(it), index.image_vectors(it.item_id).tobytes()) for it in index.items()}


def test_sigkill_while_saving_over_a_model_leaves_the_old_or_the_new_one(writer, tmp_path):
    work = tmp_path / "model"
    refs = {}

    def check():
        if not refs:
            refs.update(A=tree(work / "refA"), B=tree(work / "refB"))
        model = UniFashion.from_pretrained(work / "target")  # verifies every file first
        assert isinstance(model, UniFashion)
        got = tree(work / "target")
        match = [name for name, ref in refs.items() if ref == got]
        assert match, f"the saved model is neither the previous nor the new one: {sorted(got)}"
        return match[0]

    seen = kill_at_random_points(writer, "model", work, seed=1, rounds=ROUNDS, check=check)
    assert {state for state, _ in seen} <= {"A", "B"}
    assert check() in {"A", "B"}


def test_sigkill_while_rebuilding_an_index_leaves_the_old_or_the_new_one(writer, tmp_path):
    work = tmp_path / "build"
    refs = []

    def check():
        if not refs:
            refs.extend([index_content(work / "refX"), index_content(work / "refY")])
        got = index_content(work / "target")
        assert got in refs, f"the index is neither the previous nor the new one: {sorted(got)}"
        return "XY"[refs.index(got)]

    kill_at_random_points(writer, "build", work, seed=2, rounds=ROUNDS, check=check)
    assert len(index_content(work / "target")) == 4


def test_sigkill_while_adding_removing_compacting_leaves_a_consistent_index(writer, tmp_path):
    work = tmp_path / "add"
    refs = []

    def check():
        if not refs:
            refs.extend([index_content(work / "refX"), index_content(work / "refXZ")])
        got = index_content(work / "target")
        assert got in refs, f"the index is neither x nor x+z: {sorted(got)}"
        segments = len(CatalogIndex.open(work / "target", verify=False).segments)
        return f"{['X', 'XZ'][refs.index(got)]} in {segments} segment(s)"

    kill_at_random_points(writer, "add", work, seed=3, rounds=ROUNDS, check=check)


# ---- replacing a directory: the states a crash can leave ----------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "v.txt").write_text(text)
    (path / "sub").mkdir()
    (path / "sub" / "w.txt").write_text(text * 2)
    return path


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_and_the_states_a_crash_leaves(tmp_path, monkeypatch, exchange):
    monkeypatch.setattr(storage, "_exchange_supported", None if exchange else False)
    target = _folder(tmp_path / "t", "old")
    dead = _dead_pid()
    # killed between the two renames: only the old copy, aside -> put back
    os.rename(target, tmp_path / f"t.old-{dead}")
    assert recover_dir(target) and (target / "v.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert not recover_dir(target)  # nothing to do when the target is there
    # killed after the second rename or mid-way through deleting: leftovers of a dead writer go,
    # a live writer's staging folder stays
    _folder(tmp_path / f"t.old-{dead}", "older")
    _folder(tmp_path / f"t.new-{dead}", "half")
    live = _folder(tmp_path / f"t.new-{os.getpid()}", "being written")
    assert sorted(p.name for p in clean_leftovers(target)) == [f"t.new-{dead}", f"t.old-{dead}"]
    assert live.exists()
    shutil.rmtree(live)
    # a complete replacement (ext4 and tmpfs exchange; the other way is forced here)
    replace_dir(_folder(storage.staging_dir(target), "new"), target)
    assert tree(target) == tree(_folder(tmp_path / "expected", "new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected", "t"]
    assert storage._exchange_supported is exchange


def test_loading_finishes_an_interrupted_swap(saved, tmp_path):
    dead = _dead_pid()
    shutil.copytree(saved, tmp_path / f"m.old-{dead}")  # the model was moved aside, the new one not yet in
    model = UniFashion.from_pretrained(tmp_path / "m")
    assert torch.equal(model.temperature, UniFashion.from_pretrained(saved).temperature)
    assert tree(tmp_path / "m") == tree(saved)

    index = CatalogIndex.create(tmp_path / "i", fingerprint="f" * 64, model_source="m", num_queries=2, embed_dim=4)
    index.add([CatalogItem(item_id="a"), CatalogItem(item_id="b")], torch.randn(2, 2, 4).numpy(), None)
    os.rename(tmp_path / "i", tmp_path / f"i.old-{dead}")
    assert sorted(it.item_id for it in CatalogIndex.open(tmp_path / "i").items()) == ["a", "b"]
    # create --overwrite swaps an empty index in whole
    empty = CatalogIndex.create(tmp_path / "i", fingerprint="e" * 64, model_source="m", num_queries=2, embed_dim=4,
                                overwrite=True)
    assert empty.root == tmp_path / "i" and len(CatalogIndex.open(tmp_path / "i")) == 0
    assert not (tmp_path / "i" / "segments").exists() or not list((tmp_path / "i" / "segments").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i", "m"]


# ---- damaged model files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("saved") / "m"
    UniFashion.from_config("tiny").save_pretrained(directory)
    return directory


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("damage, file, words", [
    (_flip, "qformer.safetensors", "corrupt (sha256"),
    (_truncate, "generator/unet/diffusion_pytorch_model.safetensors", "truncated"),
    (Path.unlink, "tokenizer/tokenizer_config.json", "missing"),
])
def test_a_damaged_model_file_is_refused_by_name_before_anything_is_built(saved, tmp_path, monkeypatch,
                                                                          damage, file, words):
    copy = tmp_path / "m"
    shutil.copytree(saved, copy)
    damage(copy / file)

    def built(*args, **kwargs):
        raise AssertionError("a part was built from a damaged model")

    monkeypatch.setattr(unified, "FrozenImageEncoder", built)  # the first thing from_pretrained builds
    for verify in (True, False) if damage is not _flip else (True,):  # sizes are checked even unverified
        with pytest.raises(ConfigError) as error:
            UniFashion.from_pretrained(copy, verify=verify)
        message = str(error.value)
        assert "\n" not in message and message.startswith(str(copy / file)) and words in message, message


def test_a_model_saved_without_a_manifest_loads_with_a_warning(saved, tmp_path, caplog):
    copy = tmp_path / "m"
    shutil.copytree(saved, copy)
    (copy / "manifest.json").unlink()  # as saved by the versions before manifests
    model = UniFashion.from_pretrained(copy)
    assert "without a checksum manifest" in caplog.text and str(copy) in caplog.text
    weights = load_file(copy / "qformer.safetensors")
    assert all(torch.equal(model.qformer.state_dict()[k], v) for k, v in weights.items())
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable manifest"):
        UniFashion.from_pretrained(copy)


def test_an_empty_or_missing_directory_is_not_a_model(tmp_path):
    with pytest.raises(ConfigError, match="not a saved UniFashion model"):
        UniFashion.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a saved UniFashion model"):
        UniFashion.from_pretrained(tmp_path / "empty")
    with pytest.raises(DataError, match="not a UniFashion index"):
        CatalogIndex.open(tmp_path / "empty")


# ---- manifests: one writer, each kind's layout as earlier versions wrote and read it ---------------


def _entries(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).as_posix() != "manifest.json"}


def test_each_manifest_keeps_the_layout_earlier_versions_wrote(saved, tmp_path):
    # a model: its format name, version and every file (sub-folders too)
    model = json.loads((saved / "manifest.json").read_text())
    assert model == {"format": "unifashion-files", "format_version": 1, "files": _entries(saved)}
    # a checkpoint: version, step and files, no format name; byte for byte what the trainer always wrote
    tmp = checkpoint.begin(tmp_path / "checkpoints", 3)
    checkpoint.write_tensors(tmp / "model.safetensors", {"w": torch.ones(2)})
    checkpoint.write_json(tmp / "trainer.json", {"state": {"step": 3}})
    step = checkpoint.commit(tmp, 3)
    expected = {"files": _entries(step), "format_version": 1, "step": 3}
    assert sorted(expected["files"]) == ["model.safetensors", "trainer.json"]
    assert (step / "manifest.json").read_text() == json.dumps(expected, indent=1, sort_keys=True) + "\n"
    assert checkpoint.verify(step) == expected
    # an index: each segment's files by name, size before sha256, in the index's own manifest
    index = CatalogIndex.create(tmp_path / "i", fingerprint="f" * 64, model_source="m", num_queries=2, embed_dim=4)
    index.add([CatalogItem(item_id="a")], torch.randn(1, 2, 4).numpy(), None)
    segment = json.loads((tmp_path / "i" / "manifest.json").read_text())["segments"][0]
    assert segment["files"] == _entries(tmp_path / "i" / "segments" / segment["name"])
    assert all(list(entry) == ["bytes", "sha256"] for entry in segment["files"].values())


def test_saved_files_get_the_umasks_mode_not_safetensors_0600(saved, tmp_path):
    # safetensors (ours and diffusers') writes 0600: a model a team shares must be readable as the umask says
    umask = os.umask(0o022)
    os.umask(umask)
    mode = 0o666 & ~umask
    files = [p for p in saved.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files) and any("generator" in p.parts for p in files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(mode)}
    tmp = checkpoint.begin(tmp_path / "checkpoints", 1)
    checkpoint.write_tensors(tmp / "model.safetensors", {"w": torch.ones(2)})
    step = checkpoint.commit(tmp, 1)
    assert {oct(p.stat().st_mode & 0o777) for p in step.iterdir()} == {oct(mode)}
