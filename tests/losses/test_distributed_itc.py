"""ITC and the CIR InfoNCE terms across 2 CPU processes (gloo, localhost) equal one process on the full batch.

Each process's loss is the mean over its local rows against the gathered global batch, so the mean of
the per-process losses is the full-batch loss; a local embedding's gradient is world_size x its
full-batch gradient (all_gather's backward sums every process's contribution), and DDP's averaging
makes the parameter gradients equal to the single-process ones.
"""
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
WORKER = HERE.parent / "helpers" / "dist_itc_worker.py"


def _worker_module():
    spec = importlib.util.spec_from_file_location("dist_itc_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    # the CPU torch build ships gloo: its absence is a broken install, so it fails here
    assert torch.distributed.is_available() and torch.distributed.is_gloo_available()
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only: gloo must not look for another interface
    # torchrun (what `accelerate launch --multi_gpu` runs); accelerate's own multi-CPU launch needs mpirun
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), str(out)]
    start = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"launch failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    print(f"2-process launch took {time.monotonic() - start:.1f} s")
    return [load_file(str(out / f"rank{r}.safetensors")) for r in range(2)]


@pytest.fixture(scope="module")
def full():
    return _worker_module().reference()


@pytest.mark.parametrize("key", ["itc_loss", "cir_image_loss", "cir_caption_loss"])
def test_mean_of_process_losses_is_the_full_batch_loss(ranks, full, key):
    assert int(ranks[0]["world_size"]) == 2
    mean = (ranks[0][key] + ranks[1][key]) / 2
    torch.testing.assert_close(mean, full[key], rtol=0, atol=1e-5)
    # and the gather mattered: a process alone (its half batch) gives another loss
    local = _worker_module().embedding_losses(slice(0, 4))[key]
    assert not torch.allclose(local, ranks[0][key], atol=1e-4)


@pytest.mark.parametrize("key", ["itc_grad_image", "itc_grad_text", "cir_grad_composed", "cir_grad_image",
                                 "cir_grad_caption"])
def test_local_embedding_gradients_are_slices_of_the_full_batch_gradient(ranks, full, key):
    world = 2
    b = full[key].shape[0] // world
    for r in range(world):
        torch.testing.assert_close(ranks[r][key] / world, full[key][r * b:(r + 1) * b], rtol=0, atol=1e-5)


def test_ddp_parameter_gradients_equal_the_single_process_ones(ranks, full):
    keys = [k for k in full if k.startswith("param_grad_")]
    assert {"param_grad_proj.weight", "param_grad_temperature"} <= set(keys)
    for k in keys:
        torch.testing.assert_close(ranks[0][k], ranks[1][k], rtol=0, atol=0)  # DDP synchronised them
        torch.testing.assert_close(ranks[0][k], full[k], rtol=0, atol=1e-5)
