"""UniFashion's config: one frozen dataclass of the parts' own configs, from a shipped name or a file.

The parts define their configs next to their code; this module puts them together, reads the YAML
files shipped in unifashion/configs/ (or any YAML/JSON file) and merges nested overrides in.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from unifashion.config import from_dict, read_mapping
from unifashion.errors import ConfigError
from unifashion.models.captioner import CaptionerConfig
from unifashion.models.generator import GeneratorConfig
from unifashion.models.image_encoder import ImageEncoderConfig
from unifashion.models.qformer import QFormerConfig

NAMED_CONFIGS = ("embedded", "quickstart", "paper", "tiny")  # YAML files shipped in unifashion/configs/


@dataclass(frozen=True)
class UniFashionConfig:
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)  # frozen backbone
    qformer: QFormerConfig = field(default_factory=QFormerConfig)  # the multimodal encoder
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)  # LLM + LoRA
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)  # latent diffusion
    max_text_length: int = 64  # Q-Former text tokens (longer texts are truncated)
    temperature: float = 0.07  # initial ITC temperature (learnable, as BLIP-2)
    classify_template: str = "a photo of a {label}"  # zero-shot prompt per label


def load_config(name_or_path: str | Path, overrides: dict | None = None, *,
                overrides_flag: str = "override") -> UniFashionConfig:
    """A shipped config by name (embedded, paper, tiny) or a YAML/JSON file, with nested overrides
    (e.g. {"qformer": {"pretrained": "/models/blip2"}}) merged in.

    The config is checked whole, after the overrides (the paper config is complete only with the user's
    paths). A key or value the check refuses is named as `{overrides_flag} KEY=VALUE` when an override
    set it (the command line passes "--set"), else as the file's."""
    path = Path(name_or_path)
    if str(name_or_path) in NAMED_CONFIGS:
        path = Path(str(resources.files("unifashion") / "configs" / f"{name_or_path}.yaml"))
    elif not path.is_file():
        raise ConfigError(f"{name_or_path}: no such config file (or a name: {', '.join(NAMED_CONFIGS)})")
    data = read_mapping(path)
    overridden = dict(_flat(overrides or {}))
    for key, value in overridden.items():
        _merge(data, _nested(key, value))
    try:
        return config_from_dict(data, where=str(path))
    except ConfigError as e:
        key, reason = _refused_key(str(e), str(path))
        if key not in overridden:
            raise
        value = overridden[key]
        shown = value if isinstance(value, str) else json.dumps(value)
        raise ConfigError(f"{overrides_flag} {key}={shown}: {reason}") from None


def _refused_key(message: str, where: str) -> tuple[str, str]:
    """("generator.image_size", "expected int, got 'big'") from the message of a refused config read at
    `where` ("W.generator.image_size: expected int, ..."; "W.qformer: unknown key 'nope' ..." names
    qformer.nope); ("", message) when it names no key (the parts' own checks)."""
    if not message.startswith(where + "."):
        return "", message
    location, _, reason = message[len(where) + 1:].partition(": ")
    unknown = re.match(r"unknown key '([^']+)'", reason)
    return (f"{location}.{unknown.group(1)}" if unknown else location), reason


def _flat(overrides: dict, prefix: str = "") -> list[tuple[str, object]]:
    """{"a": {"b": 1}, "c": 2} -> [("a.b", 1), ("c", 2)]."""
    out = []
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            out.extend(_flat(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _nested(key: str, value: object) -> dict:
    """"a.b", 1 -> {"a": {"b": 1}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _merge(base: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def config_from_dict(data: dict, where: str = "config") -> UniFashionConfig:
    try:
        return from_dict(UniFashionConfig, data, where)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if not str(e).startswith(where) else str(e)) from None
    except ValueError as e:  # the parts' own checks (generator, captioner) raise ValueError
        raise ConfigError(f"{where}: {e}") from None
