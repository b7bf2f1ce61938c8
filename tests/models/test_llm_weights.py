"""The captioner's LM weights: the dequantised-GGUF cache is built once, atomically, and rebuilt when damaged."""
import json

import pytest

from unifashion.models import llm_weights as weights


def test_gguf_cache_is_atomic_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not really a gguf")
    builds = []

    def fake_build(gguf_path, entry, sha):  # stands in for the 50 s dequantisation
        builds.append(entry)
        tmp = entry.parent / (entry.name + ".tmp")
        tmp.mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(b"x" * 10)
        (tmp / weights._MANIFEST).write_text(
            json.dumps({"format": weights._CACHE_FORMAT, "gguf_sha256": sha, "files": {"model.safetensors": 10}})
        )
        tmp.rename(entry)

    monkeypatch.setattr(weights, "_build_gguf_cache", fake_build)
    entry = weights.gguf_cache_entry(gguf, tmp_path / "cache")
    assert entry.parent == tmp_path / "cache" and entry.name.startswith("tiny-") and len(builds) == 1
    assert weights.gguf_cache_entry(gguf, tmp_path / "cache") == entry and len(builds) == 1  # warm: no rebuild

    (entry / "model.safetensors").write_bytes(b"x" * 3)  # truncated
    with pytest.warns(UserWarning, match="incomplete or corrupt; rebuilding"):
        assert weights.gguf_cache_entry(gguf, tmp_path / "cache") == entry
    assert len(builds) == 2 and (entry / "model.safetensors").stat().st_size == 10
