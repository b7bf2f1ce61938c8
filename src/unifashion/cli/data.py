"""`unifashion synth` and `unifashion data ...`: write a synthetic world, read and show datasets."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from unifashion.cli.options import check_out_dir, check_out_file
from unifashion.cli.output import StageProgress, err, print_json
from unifashion.errors import UnifashionError

data_app = typer.Typer(help="Read, check and show datasets in their release formats.", no_args_is_help=True)


def synth(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the world into.")],
    products: Annotated[int, typer.Option(help="Number of products (each has 1-4 images).", min=1)] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives byte-identical files.")] = 0,
    image_size: Annotated[int, typer.Option("--image-size", help="Product image side in pixels.", min=32, max=1024)] = 128,
    holdout: Annotated[float, typer.Option(help="Fraction of (category, colour, pattern) combinations seen only in val/test.", min=0.0, max=0.9)] = 0.0,
    workers: Annotated[int, typer.Option(help="Render processes (the output does not depend on it).", min=1)] = max(1, min(4, os.cpu_count() or 1)),
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Write a synthetic fashion world in the FashionGen, Fashion200K, Fashion-IQ and VITON-HD/MGD formats."""
    from unifashion.data.synthetic.products import CatalogConfig
    from unifashion.data.synthetic.world import WorldConfig, write_world

    check_out_dir(out)
    config = WorldConfig(CatalogConfig(products=products, seed=seed, holdout=holdout), image_size=image_size,
                         workers=workers)
    start = time.perf_counter()
    try:
        with StageProgress(json_on_stdout=as_json) as progress:
            manifest = write_world(out, config, overwrite=overwrite, progress=progress)
    except OSError as e:  # a full disk, a read-only or special file system under --out
        raise UnifashionError(f"--out {out}: cannot write the world there ({e.strerror or e})") from None
    seconds = time.perf_counter() - start
    if as_json:
        print_json({**manifest, "out": str(out), "seconds": round(seconds, 2)})
        return
    c = manifest["counts"]
    err.print(f"wrote {out}: {c['products']} products, {c['images']} images, {c['triplets']} triplets, "
              f"{sum(c['tryon'].values())} try-on samples in {seconds:.1f} s")


@data_app.command("inspect")
def data_inspect(
    root: Annotated[Path, typer.Argument(help="A dataset directory (any supported format) or a synthetic world.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and count bad items instead of stopping at the first.")] = False,
    check_images: Annotated[bool, typer.Option("--check-images", help="Decode every image (slower; catches truncated files).")] = False,
) -> None:
    """Detect a dataset's format and show its splits, counts per category and examples."""
    from unifashion.data.formats.detect import summarize
    from unifashion.data.sources import is_world

    root = Path(root)
    if not root.is_dir():
        raise UnifashionError(f"{root}: not a directory")
    if is_world(root):  # every format inside it
        from unifashion.data.synthetic.world import FORMAT_DIRS

        summaries = [summarize(root / d, skip_bad=skip_bad, check_images=check_images)
                     for d in FORMAT_DIRS if (root / d).is_dir()]
    else:
        summaries = [summarize(root, skip_bad=skip_bad, check_images=check_images)]
    if as_json:
        print_json(summaries[0] if len(summaries) == 1 else {"root": str(root), "formats": summaries})
        return
    for s in summaries:
        _print_summary(s)


def _print_summary(s: dict) -> None:
    out = Console()
    out.print(f"[bold]{s['root']}[/bold]: format [cyan]{s['format']}[/cyan]")
    table = Table("split", "count", "per category")
    for split, info in s["splits"].items():
        per = ", ".join(f"{k} {v}" for k, v in sorted(info.get("per_category", {}).items()))
        table.add_row(split, str(info["count"]), per)
    out.print(table)
    for k, v in s.items():
        if k not in ("format", "root", "splits", "examples"):
            out.print(f"{k}: {json.dumps(v)}")
    for ex in s.get("examples", [])[:3]:
        out.print("  example: " + json.dumps(ex)[:300])


@data_app.command("contact-sheet")
def data_contact_sheet(
    root: Annotated[Path, typer.Argument(help="A synthetic world (or its catalog/ directory).")],
    out: Annotated[Path, typer.Option("--out", help="Image file to write: .png, .jpg / .jpeg or .webp (the suffix names the format).")],
    n: Annotated[int, typer.Option(help="Number of products shown.", min=1, max=200)] = 24,
    columns: Annotated[int, typer.Option(help="Images per row.", min=1, max=20)] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was drawn as JSON.")] = False,
) -> None:
    """Draw a grid of product images with their short titles (one image per product)."""
    from unifashion.data.contact_sheet import SHEET_FORMATS, contact_sheet
    from unifashion.data.sources import format_folder

    check_out_file(out, suffixes=tuple(SHEET_FORMATS))
    _, catalog_dir = format_folder(root, ("catalog",), needed_by="a contact sheet")
    shown = contact_sheet(catalog_dir, out, n=n, columns=columns)
    if as_json:
        print_json({"out": str(out), "items": shown})
    else:
        err.print(f"wrote {out} ({len(shown)} products)")
