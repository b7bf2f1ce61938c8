"""Option values the commands share, parsed and checked: texts, comma lists, KEY=VALUE overrides, photos."""
from __future__ import annotations

from pathlib import Path

from unifashion.errors import UnifashionError

# Longest query, modification or prompt text the commands take (the service's limit too). The
# Q-Former reads at most `max_text_length` tokens (64) of a text and the tokenizer truncates
# explicitly to that; a text far longer than any query is refused rather than silently cut.
MAX_TEXT_CHARS = 1000


def check_text(value: str, option: str) -> str:
    """`value` stripped; UnifashionError naming the option when it is empty, too long or not valid Unicode."""
    text = value.strip()
    if not text:
        raise UnifashionError(f"{option}: needs a non-empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise UnifashionError(f"{option}: the text is {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 in the command line arrive as lone surrogates
        raise UnifashionError(f"{option}: the text is not valid UTF-8") from None
    return text


def comma_list(value: str | None, option: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UnifashionError(f"{option} {value!r}: expected a comma-separated list")
    return items


def parse_overrides(items: list[str], flag: str = "--set", example: str = "qformer.pretrained=/models/blip2") -> dict:
    """["qformer.pretrained=/m", "generator.image_size=128"] -> nested dict (values parsed as YAML)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UnifashionError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {example}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UnifashionError(f"{flag} {item!r}: the value is not valid YAML") from None
    return out


def with_given(config, given: dict):
    """`config` (a frozen dataclass) with the options the user gave; those left None keep its defaults."""
    from dataclasses import replace

    return replace(config, **{k: v for k, v in given.items() if v is not None})


def check_index_model(model_dir: Path) -> Path:
    """`model_dir` (--model, or the model the index's manifest names) when a saved model is there."""
    if not (model_dir / "config.json").is_file():
        raise UnifashionError(f"{model_dir}: the index's model is not there; give --model")
    return model_dir


def read_images(paths: list[Path]):
    """The photos named on the command line, decoded as RGB (a bad one fails before any model loads)."""
    from unifashion.data.samples import ImageRef

    if not paths:
        raise UnifashionError("give at least one image")
    return [ImageRef(p).load_rgb() for p in paths]


def check_style(style: str) -> str:
    """`style` when it is a caption style; UnifashionError naming --style otherwise."""
    from unifashion.models.captioner import check_caption_style

    try:
        return check_caption_style(style)
    except UnifashionError as e:
        raise UnifashionError(f"--style {style!r}: {e}") from None
