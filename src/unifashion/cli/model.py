"""`unifashion model info`, `caption`, `generate` and `classify`: what one model is and does."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from unifashion.cli.options import (check_out_file, check_sampling_options, check_style, check_text, comma_list,
                                   load_model, parse_overrides, read_images, shown_while)
from unifashion.cli.output import StageProgress, err, print_json, print_line
from unifashion.errors import UnifashionError

model_app = typer.Typer(help="Build, load and describe UniFashion models.", no_args_is_help=True)


@model_app.command("info")
def model_info(
    config: Annotated[str, typer.Option(help="A shipped config (embedded, quickstart, paper, tiny) or a YAML/JSON file.")] = "embedded",
    model: Annotated[Path | None, typer.Option(help="A saved model directory (instead of --config).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value: KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build (or load) the model and print each part's parameters, what is frozen and where its weights came from."""
    from unifashion.config import to_dict
    from unifashion.models.model_config import load_config
    from unifashion.models.unified import UniFashion

    start = time.perf_counter()
    if model is not None:
        if set_:
            raise UnifashionError("--set applies to --config, not to a saved --model")
        net = load_model(model, json_on_stdout=as_json)
    else:
        model_config = load_config(config, parse_overrides(set_ or []), overrides_flag="--set")
        with shown_while(f"building the {config} model ...", as_json):
            net = UniFashion.from_config(model_config)
    seconds = time.perf_counter() - start
    rows = net.parts_summary()
    summary = {"model": str(model) if model else config, "build_seconds": round(seconds, 2), "parts": rows,
               "total_parameters": sum(r["parameters"] for r in rows),
               "trainable_parameters": sum(r["trainable"] for r in rows), "config": to_dict(net.config)}
    if as_json:
        print_json(summary)
        return
    table = Table("part", "parameters", "trainable", "frozen", "weights from")
    for r in rows:
        table.add_row(r["part"], f"{r['parameters']:,}", f"{r['trainable']:,}", f"{r['frozen']:,}", r["source"])
    table.add_row("total", f"{summary['total_parameters']:,}", f"{summary['trainable_parameters']:,}",
                  f"{summary['total_parameters'] - summary['trainable_parameters']:,}", "")
    Console().print(table)
    err.print(f"built in {seconds:.1f} s")


def caption(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files to describe.")],
    style: Annotated[str, typer.Option(help="short | professional | detailed")] = "professional",
    num_beams: Annotated[int, typer.Option("--num-beams", min=1)] = 1,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write product descriptions of images (the LLM reads the Q-Former's queries)."""
    pictures = read_images(images)
    check_style(style)
    texts = load_model(model, json_on_stdout=as_json).caption(pictures, style, num_beams=num_beams,
                                                      max_new_tokens=max_new_tokens)
    if as_json:
        print_json([{"image": str(p), "caption": t} for p, t in zip(images, texts)])
    else:
        for p, t in zip(images, texts):
            print_line(f"{p}: {t}")


def generate(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    out: Annotated[Path, typer.Option(help="PNG file to write (with --n > 1: OUT_0.png, OUT_1.png, ...).")],
    text: Annotated[str | None, typer.Option(help="What to draw, or how to change --image.")] = None,
    image: Annotated[Path | None, typer.Option(help="A reference garment image.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, max=64, help="Pictures to draw (seeds seed, seed+1, ...).")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="Denoising steps (up to the generator's MAX_SAMPLING_STEPS).")] = 25,
    sampler: Annotated[str, typer.Option(help="dpm++ | plms")] = "dpm++",
    guidance_scale: Annotated[float, typer.Option("--guidance-scale", help="Classifier-free guidance scale: 1 = none, up to the generator's MAX_GUIDANCE_SCALE.")] = 3.0,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Draw garments from words, a reference image or both (latent diffusion conditioned on the queries)."""
    from unifashion.data.formats.common import save_image_atomic

    if text is None and image is None:
        raise UnifashionError("give --text, --image or both")
    check_sampling_options(steps, guidance_scale, sampler)
    check_out_file(out, suffixes=(".png",))
    text = check_text(text, "--text") if text is not None else None
    reference = read_images([image]) if image is not None else None
    net = load_model(model, json_on_stdout=as_json)
    written = []
    with StageProgress(json_on_stdout=as_json) as progress:
        for i in range(n):
            picture = net.generate([text] if text is not None else None, reference, steps=steps, sampler=sampler,
                                   guidance_scale=guidance_scale, seed=seed + i,
                                   progress=lambda d, t, i=i: progress(f"picture {i + 1}/{n}", d, t))[0]
            path = out if n == 1 else out.with_name(f"{out.stem}_{i}{out.suffix}")
            save_image_atomic(picture, path)
            written.append(str(path))
    if as_json:
        print_json({"images": written, "size": list(picture.size), "steps": steps, "sampler": sampler})
    else:
        err.print(f"wrote {', '.join(written)} ({picture.size[0]}x{picture.size[1]}, {steps} {sampler} steps)")


def classify(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
    labels: Annotated[str, typer.Option(help="Comma-separated labels, e.g. 'dress,shirt,jeans'.")],
    top: Annotated[int, typer.Option(min=1, help="Labels to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot classification: each image against prompts made from the labels."""
    from unifashion.search.engine import classify_images

    names = tuple(check_text(name, "--labels") for name in comma_list(labels, "--labels"))
    pictures = read_images(images)
    ranked = [r[:top] for r in classify_images(load_model(model, json_on_stdout=as_json), pictures, names)]
    if as_json:
        print_json([{"image": str(p), "labels": [{"label": l, "probability": v} for l, v in r]}
                    for p, r in zip(images, ranked)])
    else:
        for p, r in zip(images, ranked):
            print_line(f"{p}: " + ", ".join(f"{l} {v:.2f}" for l, v in r))
