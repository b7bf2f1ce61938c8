"""`unifashion train` end to end on a tiny model: each phase trains, saves, and the next one starts from it."""
import json
import subprocess
import sys

from unifashion.models.unified import UniFashion


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "unifashion", *args], capture_output=True, text=True, timeout=600)


def test_phases_chain_through_saved_models(small_world, tmp_path):
    world = small_world[0]
    previous = None
    for phase in ("vae", "phase1a", "phase1b", "phase2", "tryon"):
        start = ["--init", str(previous)] if previous else ["--config", "tiny"]
        if phase == "phase1b":
            start += ["--phase-set", "text_condition_fraction=0.25", "--phase-set", "adapter_lr=1e-3"]
        r = run_cli("train", "--data", str(world), "--out", str(tmp_path / phase), "--phase", phase, *start,
                    "--steps", "3", "--batch-size", "4", "--checkpoint-every", "2", "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        summary = json.loads(r.stdout)
        assert summary["steps"] == 3 and summary["phase"] == phase
        if phase == "phase1b":
            assert summary["settings"]["text_condition_fraction"] == 0.25 and summary["settings"]["adapter_lr"] == 1e-3
        lines = (tmp_path / phase / "metrics.jsonl").read_text().splitlines()
        assert lines and json.loads(lines[-1])["step"] == 3
        previous = tmp_path / phase / "model"
        assert (previous / "config.json").is_file()
    model = UniFashion.from_pretrained(previous)  # every other command accepts the trained model
    assert model.encode_text(["red dress"]).text_embeds.shape[0] == 1
    # the calibrated VAE scaling factor survives the later phases
    assert model.generator.vae.config.scaling_factor != 1.0
    assert model.generator.config.inpainting and model.config.generator.inpainting  # the tryon phase's generator


def test_train_refuses_bad_requests(small_world, tmp_path):
    r = run_cli("train", "--data", str(small_world[0]), "--out", str(tmp_path / "x"), "--phase", "phase9",
                "--config", "tiny")
    assert r.returncode == 1 and "phase9" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", "--data", str(small_world[0] / "fashioniq"), "--out", str(tmp_path / "y"),
                "--phase", "phase1a", "--config", "tiny", "--steps", "1")
    assert r.returncode == 1 and "fashioniq" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", "--data", str(small_world[0]), "--out", str(tmp_path / "z"), "--phase", "phase1b",
                "--config", "tiny", "--steps", "1", "--phase-set", "train_difusion=false")
    assert r.returncode == 1 and "train_difusion" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train", "--data", str(small_world[0]), "--out", str(tmp_path / "w"), "--phase", "phase1b",
                "--init", str(tmp_path / "x"), "--set", "generator.image_size=64", "--steps", "1")
    assert r.returncode == 1 and "--init" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_two_cpu_processes_under_accelerate_launch(small_world, tmp_path):
    """Data parallel on 2 CPU processes (gloo): ITC gathers across them; one process writes and reports."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    # accelerate's --cpu runs one process without MPI; --multi_gpu on a machine with no GPU is torchrun + gloo
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "--main_process_port", str(port), "-m", "unifashion", "train", "--data", str(small_world[0]),
                        "--out", str(tmp_path / "ddp"), "--phase", "phase1a", "--config", "tiny", "--steps", "3",
                        "--batch-size", "4", "--checkpoint-every", "2", "--json"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)  # exactly one JSON document: only the main process prints
    assert summary["processes"] == 2 and summary["steps"] == 3
    assert {"itc_loss", "itm_loss"} <= set(summary["losses"])
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) >= 1
    assert UniFashion.from_pretrained(tmp_path / "ddp" / "model").config.qformer.num_query_tokens == 8


def test_a_new_model_is_initialised_from_the_seed(small_world, tmp_path):
    import torch

    from unifashion.training.phases import QFormerPretraining
    from unifashion.training.run_phase import run_phase
    from unifashion.training.trainer import TrainConfig

    def trained(name, seed):
        run_phase(QFormerPretraining(), small_world[0], tmp_path / name, TrainConfig(steps=1, batch_size=4, seed=seed),
                  model_config="tiny", progress=False)
        return UniFashion.from_pretrained(tmp_path / name / "model").qformer.state_dict()

    a, b, c = trained("a", 0), trained("b", 0), trained("c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed: the same init and the same step
    assert not all(torch.equal(a[k], c[k]) for k in a)
