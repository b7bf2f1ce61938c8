"""`accelerate launch -m unifashion index build` on 2 CPU processes (torchrun + gloo) splits the catalog's
chunks between them, and the index it writes equals a one-process build's: same items in the same order,
same gallery captions, vectors within 1e-5 — for the built-in index and for a Qdrant edge shard."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from unifashion.models.unified import UniFashion
from unifashion.search.index_folder import open_index
from unifashion.search.qdrant_collection import CAPTION, QUERIES


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("distmodel") / "model"
    UniFashion.from_config("tiny").save_pretrained(out)
    return out


def _env() -> dict:
    # one thread per process in every build: the same kernels, so the same float32 sums before float16
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo",
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _build(args, processes: int) -> dict:
    if processes == 1:
        launch = [sys.executable, "-m", "unifashion"]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                  str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(port), "-m", "unifashion"]
    r = subprocess.run([*launch, "index", "build", *map(str, args), "--batch-size", "4", "--json"],
                       capture_output=True, text=True, timeout=600, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)  # exactly one JSON document: only the main process reports


def _contents(root):
    """(items as dicts, image vectors (N, Q, E), caption vectors (N, E)) of either backend's index."""
    index = open_index(root)
    items = sorted(index.items(), key=lambda it: it.item_id)
    ids = [it.item_id for it in items]
    if hasattr(index, "collection"):
        found = index.collection.retrieve(ids, [QUERIES, CAPTION])
        images = np.array([v[QUERIES] for _, v in found], dtype=np.float32)
        captions = np.array([v[CAPTION] for _, v in found], dtype=np.float32)
    else:
        images = np.stack([index.image_vectors(i) for i in ids])
        s = index.segments[0]
        captions = np.asarray(s.captions.vectors[[index._where[i][1] for i in ids]], np.float32)[:, 0]
    return [it.__dict__ for it in items], images, captions


def test_a_two_process_build_equals_a_one_process_build(model_dir, small_world, tmp_path):
    data = ["--model", model_dir, "--data", small_world[0], "--split", "val"]
    one = _build([*data, "--out", tmp_path / "one"], 1)
    two = _build([*data, "--out", tmp_path / "two"], 2)
    assert one["items"] == two["items"] > 8
    assert (one["processes"], two["processes"]) == (1, 2)  # the launch really ran as one group of two
    edge = _build([*data, "--out", tmp_path / "edge", "--qdrant-edge", tmp_path / "shard"], 2)
    assert edge["items"] == one["items"] and edge["backend"] == "qdrant" and edge["processes"] == 2
    items, images, captions = _contents(tmp_path / "one")
    for other in ("two", "edge"):
        other_items, other_images, other_captions = _contents(tmp_path / other)
        assert other_items == items
        np.testing.assert_allclose(other_images, images, atol=1e-5, rtol=0)
        np.testing.assert_allclose(other_captions, captions, atol=1e-5, rtol=0)
    assert not (tmp_path / "two" / ".build").exists()  # the chunks are gone once the index is written
