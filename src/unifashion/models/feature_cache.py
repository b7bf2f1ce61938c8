"""A content-addressed disk cache of the frozen image encoder's tokens (training and evaluation).

The backbone never trains, so its tokens are computed once per image: `FeatureCache` stores them
under a content hash of the image (`image_key`), in a folder named after the encoder's weights and
preprocessing (`FrozenImageEncoder.identity`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from unifashion.errors import ConfigError, DataError
from unifashion.models.image_encoder import FrozenImageEncoder


def image_key(image: Image.Image) -> str:
    """Content hash: sha256 over mode, size and raw pixel bytes (and the palette, if any)."""
    if not isinstance(image, Image.Image):
        raise DataError(f"feature cache: expected a PIL image, got {type(image).__name__}")
    h = hashlib.sha256()
    h.update(f"{image.mode}|{image.size[0]}x{image.size[1]}|".encode())
    if image.mode in ("P", "PA"):
        h.update(bytes(image.getpalette() or []))
        h.update(repr(image.info.get("transparency")).encode())
    h.update(image.tobytes())
    return h.hexdigest()


class FeatureCache:
    """Backbone tokens stored once per image: root/<identity[:16]>/<key[:2]>/<key>.safetensors.

    Each file holds one float32 tensor "tokens" of shape (N, D). Files are written atomically
    (temporary file + os.replace); an unreadable or wrongly shaped file is recomputed and replaced.
    """

    def __init__(self, root: Path, encoder: FrozenImageEncoder):
        self.encoder = encoder
        self.dir = Path(root) / encoder.identity[:16]
        self.hits = 0  # rows served without running the backbone
        self.misses = 0  # rows computed by the backbone

    def key(self, image: Image.Image) -> str:
        return image_key(image)

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.safetensors"

    def encode(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        """(B, N, D) float32 tokens in input order; cached rows are read, missing ones computed in batches."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"feature cache: batch_size must be a positive integer, got {batch_size!r}")
        if len(images) == 0:
            raise DataError("feature cache: no images given")
        keys = [self.key(image) for image in images]
        rows: dict[str, torch.Tensor] = {}
        todo: dict[str, Image.Image] = {}  # key -> first image with it, in input order
        for key, image in zip(keys, images):
            if key in rows or key in todo:
                continue
            tokens = self._read(key)
            if tokens is None:
                todo[key] = image
            else:
                rows[key] = tokens
        pending = list(todo.items())
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            with torch.no_grad():
                tokens = self.encoder(self.encoder.preprocess([image for _, image in chunk]))  # (b, N, D)
            tokens = tokens.detach().to("cpu", torch.float32)
            for (key, _), row in zip(chunk, tokens):
                row = row.contiguous()
                self._write(key, row)
                rows[key] = row
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return torch.stack([rows[key] for key in keys])  # (B, N, D)

    def _read(self, key: str) -> torch.Tensor | None:
        from safetensors.torch import load_file

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tokens = load_file(path)["tokens"]
        except Exception:  # truncated / corrupt file (SafetensorError, OSError, KeyError): recompute
            return None
        expected = (self.encoder.num_tokens, self.encoder.hidden_size)
        if tuple(tokens.shape) != expected or tokens.dtype != torch.float32:
            return None
        return tokens

    def _write(self, key: str, tokens: torch.Tensor) -> None:
        from safetensors.torch import save_file

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"tokens": tokens}, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
