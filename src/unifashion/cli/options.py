"""Option values the commands share, parsed and checked: texts, comma lists, KEY=VALUE overrides, photos."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from rich.markup import escape

from unifashion.cli.output import err, one_line, progress_shown
from unifashion.errors import ConfigError, DataError, UnifashionError

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


def load_model(model_dir: Path, *, json_on_stdout: bool = False):
    """The saved model at `model_dir` (seconds: every part's weights are checked and read), with
    "loading model from DIR ..." on stderr while it loads (`shown_while`)."""
    from unifashion.models.unified import UniFashion

    if not (Path(model_dir) / "config.json").is_file():  # not a model: the loader's one line, nothing before it
        return UniFashion.from_pretrained(model_dir)
    with shown_while(f"loading model from {model_dir} ...", json_on_stdout):
        return UniFashion.from_pretrained(model_dir)


@contextmanager
def shown_while(message: str, json_on_stdout: bool = False):
    """`message` on stderr while the block runs: on a terminal a spinner that goes when the block ends
    (so an error after it is the only line), in a log one line; neither when stdout is JSON for a
    program (like the progress bars, `progress_shown`)."""
    text = escape(one_line(message))
    if not progress_shown(json_on_stdout):
        yield
    elif err.is_terminal:
        with err.status(text):
            yield
    else:
        err.print(text, highlight=False, soft_wrap=True)
        yield


def check_sampling_options(steps: int, guidance_scale: float, sampler: str = "dpm++", *,
                           steps_option: str = "--steps") -> None:
    """--sampler, --steps and --guidance-scale: what the generator's sampler takes (generator.check_sampling)."""
    from unifashion.models.generator import SAMPLERS, check_sampling

    if sampler not in SAMPLERS:
        raise UnifashionError(f"--sampler {sampler!r}: expected {' or '.join(SAMPLERS)}")
    for option, value, args in ((steps_option, steps, (steps, 1.0)),
                                ("--guidance-scale", guidance_scale, (1, guidance_scale))):
        try:
            check_sampling(*args)
        except DataError as e:
            raise UnifashionError(f"{option} {value}: {e}") from None


def check_out_file(path: Path, option: str = "--out", suffixes: tuple[str, ...] | None = None) -> Path:
    """`path` when a file can be written there (and has one of `suffixes`); one line naming it otherwise."""
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise UnifashionError(f"{option} {path}: expected a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UnifashionError(f"{option} {path}: is a folder, not a file name")
    _check_writable_below(path.parent, path, option)
    return path


def check_out_dir(path: Path, option: str = "--out") -> Path:
    """`path` when a folder can be made (or written) there; one line naming it otherwise."""
    if path.exists() and not path.is_dir():
        raise UnifashionError(f"{option} {path}: exists and is not a folder")
    _check_writable_below(path if path.exists() else path.parent, path, option)
    return path


def _check_writable_below(folder: Path, path: Path, option: str) -> None:
    """The nearest existing folder at or above `folder` is a folder we may write into."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UnifashionError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnifashionError(f"{option} {path}: cannot write into {existing} (permission denied)")


def check_tryon_model(folder: Path, option: str = "--model") -> Path:
    """`folder` when its saved config says the generator is the inpainting one (try-on and design):
    one line naming `option` otherwise, before anything loads."""
    from unifashion.config import read_mapping

    if not (Path(folder) / "config.json").is_file():
        raise UnifashionError(f"{option} {folder}: not a saved model (no config.json)")
    try:
        generator = read_mapping(Path(folder) / "config.json").get("generator")
    except ConfigError as e:
        raise UnifashionError(f"{option} {folder}: {e}") from None
    if not (isinstance(generator, dict) and generator.get("inpainting") is True):
        raise UnifashionError(f"{option} {folder}: not an inpainting try-on model (its generator has no try-on "
                              "inputs); give one trained with `unifashion train --phase tryon` (the quickstart's "
                              "tryon_model)")
    return folder
