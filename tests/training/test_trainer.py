"""The generic trainer: learning, exact resume (in process, after SIGKILL, under 2 processes), atomic and
verified checkpoints, clear errors."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unifashion.errors import ConfigError
from unifashion.training import CheckpointError, TrainConfig, TrainingError, list_checkpoints, lr_factor, train
from unifashion.training.resume_state import EpochBatches, capture_rng, restore_rng

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from toy_train import ToyData, ToyModel, ToyPhase  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "toy_train.py"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible CPU kernels
    yield
    torch.set_num_threads(threads)


def config(**kw) -> TrainConfig:
    """40 items in batches of 6: 6 batches per epoch, so the step-5 and step-10 checkpoints fall mid-epoch."""
    base = dict(steps=20, batch_size=6, grad_accumulation=2, checkpoint_every=5, log_every=3, keep_checkpoints=2,
                warmup_ratio=0.1)
    return TrainConfig(**{**base, **kw})


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def final_weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / f"step-{step}" / "model.safetensors"))


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    return e


# ---- pure parts ------------------------------------------------------------------------------


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, warmup=3, total=13, schedule="cosine") for s in range(13)]
    assert f[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert f[3] == 1.0 and all(a > b for a, b in zip(f[3:], f[4:])) and 0 < f[-1] < 0.05
    assert [lr_factor(s, warmup=0, total=5, schedule="constant") for s in range(5)] == [1.0] * 5


def test_epoch_batches_resume_and_shard():
    full = list(EpochBatches(40, 7, seed=3, epoch=2))
    assert len(full) == 5 and all(len(b) == 7 for b in full)
    assert list(EpochBatches(40, 7, seed=3, epoch=2, start=3)) == full[3:]
    assert list(EpochBatches(40, 7, seed=3, epoch=3)) != full  # a new order each epoch
    r0 = list(EpochBatches(40, 4, seed=3, epoch=0, num_processes=2, rank=0))
    r1 = list(EpochBatches(40, 4, seed=3, epoch=0, num_processes=2, rank=1))
    flat = [i for b in r0 + r1 for i in b]
    assert len(r0) == len(r1) == 5 and len(set(flat)) == 40


def test_rng_round_trip():
    tensors, meta = capture_rng()
    a = (random.random(), float(torch.rand(1)), __import__("numpy").random.rand())
    restore_rng(tensors, meta)
    assert (random.random(), float(torch.rand(1)), __import__("numpy").random.rand()) == a


def test_config_is_checked():
    with pytest.raises(ConfigError, match="train.steps"):
        TrainConfig(steps=0, batch_size=1)
    with pytest.raises(ConfigError, match="warmup_ratio"):
        TrainConfig(steps=1, batch_size=1, warmup_ratio=1.5)


# ---- training --------------------------------------------------------------------------------


def test_loss_decreases(tmp_path):
    phase = ToyPhase(lr=3e-3)
    cfg = config(steps=50, grad_accumulation=1, log_every=10, lr_schedule="constant", checkpoint_every=50)
    summary = train(ToyModel(), phase, ToyData(), cfg, tmp_path, progress=True)  # the rich bar, on stderr
    rows = metrics(tmp_path)
    assert summary["steps"] == 50 and [r["step"] for r in rows] == [10, 20, 30, 40, 50]
    assert rows[-1]["mse_loss"] < 0.5 * rows[0]["mse_loss"]
    assert set(rows[0]) == {"step", "epoch", "l1_loss", "mse_loss", "total", "lr", "seconds"}
    assert rows[0]["total"] == pytest.approx(rows[0]["mse_loss"] + 0.5 * rows[0]["l1_loss"])
    # only what trains is in the checkpoint (the frozen embed is not), under the model's own names
    assert set(final_weights(tmp_path, 50)) == {"mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias"}


def test_exact_resume_in_process(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    a = ToyPhase()
    train(ToyModel(), a, ToyData(), config(), straight, progress=False)

    b1 = ToyPhase(crash_on_call=2 * 10 + 2)  # dies in step 11, after its first micro-batch drew random numbers
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(ToyModel(), b1, ToyData(), config(), resumed, progress=False)
    assert [s for s, _ in list_checkpoints(resumed / "checkpoints")] == [5, 10]
    b2 = ToyPhase()
    summary = train(ToyModel(), b2, ToyData(), config(), resumed, resume=True, progress=False)

    assert summary["start_step"] == 10 and summary["steps"] == 20
    assert b1.seen[:20] + b2.seen == a.seen  # the same batches in the same order
    assert_bitwise_equal(final_weights(straight, 20), final_weights(resumed, 20))
    assert without_seconds(metrics(straight)) == without_seconds(metrics(resumed))
    assert [s for s, _ in list_checkpoints(resumed / "checkpoints")] == [15, 20]  # keep_checkpoints=2


def test_resume_when_done_is_a_no_op_and_tmp_dirs_are_ignored(tmp_path):
    train(ToyModel(), ToyPhase(), ToyData(), config(steps=10), tmp_path, progress=False)
    junk = tmp_path / "checkpoints" / "step-15.tmp"
    junk.mkdir()
    (junk / "model.safetensors").write_bytes(b"half")
    phase = ToyPhase()
    summary = train(ToyModel(), phase, ToyData(), config(steps=10), tmp_path, resume=True, progress=False)
    assert summary["start_step"] == 10 and summary["steps"] == 10 and phase.calls == 0
    assert not junk.exists()
    assert summary["checkpoint"].endswith("step-10")


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    train(ToyModel(), ToyPhase(), ToyData(), config(steps=10), tmp_path, progress=False)
    step10 = tmp_path / "checkpoints" / "step-10"
    target = step10 / "optimizer.safetensors"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target = step10 / "manifest.json"
        target.write_text(target.read_text()[:50])
    model = ToyModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        train(model, ToyPhase(), ToyData(), config(steps=20), tmp_path, resume=True, progress=False)
    message = str(info.value)
    assert str(target) in message and "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_clear_errors(tmp_path):
    train(ToyModel(), ToyPhase(), ToyData(), config(steps=5), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="earlier run"):
        train(ToyModel(), ToyPhase(), ToyData(), config(steps=5), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="steps: 5 -> 6"):
        train(ToyModel(), ToyPhase(), ToyData(), config(steps=6), tmp_path, resume=True, progress=False)
    with pytest.raises(TrainingError, match=r"step 2: non-finite loss \(l1_loss=.*mse_loss=nan"):
        train(ToyModel(), ToyPhase(nan_on_call=3), ToyData(), config(steps=5), tmp_path / "nan", progress=False)
    phase = ToyPhase()
    phase.loss_weights = {"msee_loss": 1.0}
    with pytest.raises(ConfigError, match="msee_loss"):
        train(ToyModel(), phase, ToyData(), config(steps=5), tmp_path / "typo", progress=False)
    with pytest.raises(Exception, match="fewer than one batch"):
        train(ToyModel(), ToyPhase(), ToyData(n=5), config(steps=5), tmp_path / "small", progress=False)


class QFormerPhase:
    """A UniFashion phase in miniature: Q-Former + temperature train, an ITC-style loss on random image
    tokens and short texts (model methods called inside the phase, strings in the batch)."""

    name = "tiny-itc"
    loss_weights = {"itc_loss": 1.0}

    def parameter_groups(self, model):
        model.requires_grad_(False)
        model.qformer.requires_grad_(True)
        model.temperature.requires_grad_(True)
        return [{"params": list(model.qformer.parameters()), "lr": 1e-3},
                {"params": [model.temperature], "lr": 1e-3, "weight_decay": 0.0}]

    def losses(self, model, batch):
        image = model.qformer.image_features(batch["tokens"]).image_embeds  # (B, Q, E)
        text = model.encode_text(batch["text"]).text_embeds  # (B, E)
        logits = model.similarity(image, text) / model.temperature  # (B, B)
        target = torch.arange(len(logits))
        return {"itc_loss": (torch.nn.functional.cross_entropy(logits, target)
                             + torch.nn.functional.cross_entropy(logits.T, target)) / 2}


class TokenTexts(torch.utils.data.Dataset):
    def __init__(self, n: int, tokens: int, width: int):
        self.tokens = torch.randn(n, tokens, width, generator=torch.Generator().manual_seed(0))
        self.texts = [f"a {c} {g}" for c in ("red", "blue", "green", "black") for g in ("dress", "shirt", "coat")][:n]

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        return {"tokens": self.tokens[i], "text": self.texts[i]}


def test_tiny_unifashion_phase_resumes_exactly(tmp_path):
    from unifashion.models.unified import UniFashion

    model = UniFashion.from_config("tiny")
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    data = TokenTexts(12, model.image_encoder.num_tokens, model.image_encoder.hidden_size)
    cfg = TrainConfig(steps=4, batch_size=4, checkpoint_every=2, log_every=1, warmup_ratio=0.0)
    train(model, QFormerPhase(), data, cfg, tmp_path / "a", progress=False)
    straight = final_weights(tmp_path / "a", 4)
    assert set(straight) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(k.startswith("qformer.") for k in straight) and "temperature" in straight

    model.load_state_dict(initial)  # the same model again, untrained
    crashing = QFormerPhase()
    calls = []
    original = crashing.losses
    crashing.losses = lambda m, b: (calls.append(1), original(m, b) if len(calls) < 3 else 1 / 0)[1]
    with pytest.raises(ZeroDivisionError):
        train(model, crashing, data, cfg, tmp_path / "b", progress=False)
    model.load_state_dict(initial)
    summary = train(model, QFormerPhase(), data, cfg, tmp_path / "b", resume=True, progress=False)
    assert summary["start_step"] == 2
    assert_bitwise_equal(straight, final_weights(tmp_path / "b", 4))
    assert without_seconds(metrics(tmp_path / "a")) == without_seconds(metrics(tmp_path / "b"))


# ---- processes -------------------------------------------------------------------------------


def run_script(out: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *args], env=env(), capture_output=True,
                          text=True, timeout=timeout)


def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    args = ["--steps", "90", "--checkpoint-every", "3", "--log-every", "2", "--sleep", "0.01"]
    reference = tmp_path / "reference"
    done = run_script(reference, *args)
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    deadline = time.monotonic() + 120
    while kills < 5:
        assert time.monotonic() < deadline, "the training process made no progress"
        before = max((s for s, _ in list_checkpoints(out / "checkpoints")), default=0)
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), *args, "--resume"], env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and max((s for s, _ in list_checkpoints(out / "checkpoints")), default=0) <= before:
            time.sleep(0.005)
        assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]}"
        time.sleep(rng.uniform(0.0, 0.15))  # land anywhere: mid-step, mid-checkpoint, mid-metrics line
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills += 1
    assert kills == 5
    final = run_script(out, *args, "--resume")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout.splitlines()[-1])["steps"] == 90

    steps = [r["step"] for r in metrics(out)]
    assert steps == list(range(2, 91, 2))  # contiguous, no duplicates
    assert without_seconds(metrics(out)) == without_seconds(metrics(reference))
    assert_bitwise_equal(final_weights(reference, 90), final_weights(out, 90))
    assert not list((out / "checkpoints").glob("*.tmp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out: Path, *args: str) -> subprocess.CompletedProcess:
    """Two CPU processes through `accelerate launch`. `--cpu --num_processes 2` alone starts ONE process
    (accelerate's simple launcher; multi-CPU needs mpirun), so it is `--multi_gpu`, which goes through
    torchrun; with no GPU the trainer's Accelerator(cpu=True) then uses gloo (DistributedType.MULTI_CPU)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip",
           "127.0.0.1", "--main_process_port", str(free_port()), str(SCRIPT), str(out), "--steps", "6",
           "--batch-size", "4", "--grad-accumulation", "2", "--checkpoint-every", "3", "--log-every", "2", *args]
    e = env()
    e.update(MASTER_ADDR="127.0.0.1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=120)


def test_two_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    done = launch(out, "--seen", str(tmp_path / "seen"))
    assert done.returncode == 0, done.stderr[-3000:]

    assert [r["step"] for r in metrics(out)] == [2, 4, 6]  # written once, by the main process
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [3, 6]
    step6 = out / "checkpoints" / "step-6"
    assert {"rng-0.safetensors", "rng-1.safetensors", "model.safetensors"} <= {p.name for p in step6.iterdir()}
    assert json.loads((step6 / "trainer.json").read_text())["num_processes"] == 2
    seen0 = json.loads((tmp_path / "seen.0").read_text())
    seen1 = json.loads((tmp_path / "seen.1").read_text())
    assert len(seen0) == len(seen1) == 12  # 6 steps x 2 micro-batches per process
    for b0, b1 in zip(seen0, seen1):
        assert not set(b0) & set(b1)  # each process its own shard of every global batch
    # different data, same weights: the gradients were averaged over the processes
    assert_bitwise_equal(load_file(str(tmp_path / "seen.0.safetensors")),
                         load_file(str(tmp_path / "seen.1.safetensors")))

    # crash both processes in step 5 (after the step-3 checkpoint), resume with 2 processes: same result
    crashed = tmp_path / "crashed"
    assert launch(crashed, "--crash-on-call", "10").returncode != 0
    assert [s for s, _ in list_checkpoints(crashed / "checkpoints")] == [3]
    resumed = launch(crashed, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_bitwise_equal(final_weights(out, 6), final_weights(crashed, 6))
    assert without_seconds(metrics(out)) == without_seconds(metrics(crashed))

    # a single process cannot resume a 2-process run (the data order depends on it)
    with pytest.raises(ConfigError, match="2 process"):
        train(ToyModel(), ToyPhase(), ToyData(),
              config(steps=6, batch_size=4, grad_accumulation=2, checkpoint_every=3, log_every=2),
              out, resume=True, progress=False)
