"""No pickle anywhere: our code never unpickles, and third-party weights go through loaders that refuse
a pickled payload (torch.load(weights_only=True), which transformers and diffusers use for .bin files).

The payload below is a real attack: unpickling it runs `open(marker, "w")`. Each loader must refuse it
and the marker must not appear.
"""
from __future__ import annotations

import ast
import json
import pickle  # only to WRITE the attack payload; nothing here or in src/ unpickles
from pathlib import Path

import pytest

from unifashion.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
AUDITED = [ROOT / "src", ROOT / "scripts", ROOT / "benchmarks"]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _attack(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    return path


ALIASES = {"torch": {"torch"}, "numpy": {"numpy", "np"}}


def _calls(tree: ast.AST, dotted: str):
    """Calls of `module.name(...)`, with the module under its usual aliases."""
    module, name = dotted.split(".")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ALIASES[module]):
            yield node


def _keyword_is(node: ast.Call, key: str, value) -> bool:
    return any(k.arg == key and isinstance(k.value, ast.Constant) and k.value.value is value for k in node.keywords)


def test_the_source_never_unpickles():
    files = [p for root in AUDITED for p in root.rglob("*.py")]
    assert len(files) > 20  # the audit really reads the package
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{where}:{node.lineno} imports {a.name}" for a in node.names
                             if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                problems.append(f"{where}:{node.lineno} imports from {node.module}")
            elif isinstance(node, ast.Attribute) and node.attr in {"read_pickle", "to_pickle"}:
                problems.append(f"{where}:{node.lineno} uses {node.attr}")
        problems += [f"{where}:{n.lineno} torch.save pickles" for n in _calls(tree, "torch.save")]
        problems += [f"{where}:{n.lineno} torch.load without weights_only=True" for n in _calls(tree, "torch.load")
                     if not _keyword_is(n, "weights_only", True)]
        problems += [f"{where}:{n.lineno} np.load without allow_pickle=False" for n in _calls(tree, "numpy.load")
                     if not _keyword_is(n, "allow_pickle", False)]
    assert problems == []


def test_the_audit_catches_what_it_looks_for():
    bad = ast.parse("import pickle\nimport torch, numpy as np\ntorch.load(f)\nnp.load(g)\ntorch.save(x, f)\n")
    assert len(list(_calls(bad, "torch.load"))) == 1
    assert not _keyword_is(next(_calls(bad, "torch.load")), "weights_only", True)
    assert len(list(_calls(bad, "numpy.load"))) == 1 and len(list(_calls(bad, "torch.save"))) == 1
    good = ast.parse("torch.load(f, weights_only=True)\nnp.load(g, allow_pickle=False)\n")
    assert _keyword_is(next(_calls(good, "torch.load")), "weights_only", True)
    assert _keyword_is(next(_calls(good, "numpy.load")), "allow_pickle", False)


def test_image_encoder_weights_refuse_a_pickled_payload(tmp_path):
    from unifashion.models.image_encoder import load_state_file

    marker = tmp_path / "pwned"
    weights = _attack(tmp_path / "weights.pth", marker)
    with pytest.raises(ConfigError) as caught:
        load_state_file(weights)
    message = str(caught.value)
    assert str(weights) in message and "\n" not in message
    assert not marker.exists()


def test_a_pickled_language_model_checkpoint_is_refused(tmp_path):
    """A user's LM directory whose pytorch_model.bin is an attack: transformers loads .bin files with
    weights_only=True, so it fails instead of running the payload."""
    from transformers import AutoModelForCausalLM, GPT2Config

    marker = tmp_path / "pwned"
    GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16, n_positions=8).save_pretrained(tmp_path)
    _attack(tmp_path / "pytorch_model.bin", marker)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gpt2"
    with pytest.raises(Exception):
        AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True)
    assert not marker.exists()


def test_a_pickled_diffusers_checkpoint_is_refused(tmp_path):
    """The same for a Stable Diffusion part with a .bin file (diffusers: torch.load(weights_only=True))."""
    from diffusers import AutoencoderKL

    marker = tmp_path / "pwned"
    vae = tmp_path / "vae"
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4).save_config(vae)
    _attack(vae / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(Exception):
        AutoencoderKL.from_pretrained(tmp_path, subfolder="vae", local_files_only=True)
    assert not marker.exists()
