"""`unifashion captions` and `unifashion eval`: gallery captions and the published evaluation protocols."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from unifashion.cli.options import check_out_file, check_sampling_options, check_style, comma_list, load_model
from unifashion.cli.output import StageProgress, err, print_json, report_skipped
from unifashion.errors import DataError, UnifashionError


def captions(
    model: Annotated[Path, typer.Option(help="A trained model directory (after phase 1b).")],
    data: Annotated[Path, typer.Option(help="A Fashion-IQ folder or a synthetic world.")],
    out: Annotated[Path, typer.Option(help="JSON file to write: {image name: caption}.")],
    split: Annotated[str, typer.Option(help="Gallery split to caption: val | test (ignored with --fashion-iq-cap).")] = "val",
    fashion_iq_cap: Annotated[bool, typer.Option("--fashion-iq-cap", help="Describe the TRAINING images, prompted with keywords from the training relative captions (the paper's Fashion-IQ-Cap).")] = False,
    style: Annotated[str, typer.Option(help="short | professional | detailed")] = "detailed",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1)] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images, list them on stderr and in --json, and caption the rest.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a summary as JSON.")] = False,
) -> None:
    """Caption every gallery image from the image alone (caption-assisted retrieval), or make Fashion-IQ-Cap."""
    from unifashion.data.formats import fashioniq
    from unifashion.data.sources import format_folder
    from unifashion.evaluation.gallery_captions import (caption_images, fashioniq_gallery, readable_images,
                                                        relative_caption_keywords, write_gallery_captions)

    check_style(style)
    which = "train" if fashion_iq_cap else split
    if which not in ("train", "val", "test"):
        raise UnifashionError(f"--split {split!r}: expected val or test")
    _, root = format_folder(data, ("fashioniq",), needed_by="captions")
    images = fashioniq_gallery(root, which)
    skipped: list[dict] = []
    if skip_bad:  # decode each image once up front: the bad ones are listed, the rest captioned
        images = readable_images(images, skipped)
        report_skipped(skipped)
    hints = relative_caption_keywords(fashioniq.load(root, "train")) if fashion_iq_cap else None
    check_out_file(out)
    net = load_model(model, json_on_stdout=as_json)
    start = time.perf_counter()
    with StageProgress(json_on_stdout=as_json) as progress:
        result = caption_images(net, images, style=style, hints=hints, batch_size=batch_size,
                                max_new_tokens=max_new_tokens, progress=lambda d, t: progress("captioning", d, t))
    write_gallery_captions(out, result)
    summary = {"out": str(out), "images": len(result), "split": which, "style": style,
               "keyword_prompts": len(hints) if hints is not None else 0,
               "seconds": round(time.perf_counter() - start, 2), "skipped": skipped}
    if as_json:
        print_json(summary)
    else:
        err.print(f"wrote {len(result)} captions of {which} images to {out} in {summary['seconds']} s")


def eval_(
    model: Annotated[Path, typer.Option(help="A trained model directory (e.g. a run's OUT/model).")],
    data: Annotated[list[Path], typer.Option(help="A synthetic world or a dataset folder (FashionGen, Fashion200K, a catalog, Fashion-IQ, VITON-HD); repeat for several.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated: cmr, cir, cap, gen, tryon, design (try-on from the caption alone).")] = "cmr,cir,cap,gen",
    split: Annotated[str | None, typer.Option(help="Split to evaluate (default: each format's evaluation split: FashionGen validation, Fashion-IQ val, Fashion200K and VITON-HD test).")] = None,
    categories: Annotated[str | None, typer.Option(help="Fashion-IQ categories, comma-separated (default: all).")] = None,
    gallery_captions: Annotated[Path | None, typer.Option("--gallery-captions", help="Gallery captions JSON ({image name: caption}, from `unifashion captions`) for caption-assisted CIR.")] = None,
    caption_gallery: Annotated[bool, typer.Option("--caption-gallery", help="Caption the CIR gallery with the model now, from the images alone.")] = False,
    cmr_queries: Annotated[int, typer.Option("--cmr-queries", min=1, help="Sample-100 queries per seed.")] = 1000,
    caption_items: Annotated[int, typer.Option("--caption-items", min=1)] = 100,
    generation_items: Annotated[int, typer.Option("--generation-items", min=2)] = 32,
    tryon_items: Annotated[int, typer.Option("--tryon-items", min=2)] = 32,
    generation_steps: Annotated[int, typer.Option("--generation-steps", min=1, help="Denoising steps per generated image.")] = 25,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Generation noise seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics and `meta` as JSON (instead of the table).")] = False,
    json_out: Annotated[Path | None, typer.Option("--out", help="Also write the metrics and `meta` as JSON to this file.")] = None,
    tables: Annotated[bool, typer.Option("--tables", help="Also print the paper's Tables 1-5 with our numbers beside UniFashion's.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a report (Markdown + HTML with plots) into this folder.")] = None,
) -> None:
    """Evaluate a model with the published protocols: cross-modal retrieval (sample-100 and full gallery),
    composed retrieval (Fashion-IQ), captions (BLEU-4, METEOR, ROUGE-L, CIDEr), generation and try-on."""
    from unifashion.storage import write_text_atomic
    from unifashion.evaluation.evaluate import EvalConfig, EvalDetails, evaluate, evaluation_meta
    from unifashion.data.sources import EVAL_SPLITS, find_sources
    from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery, read_gallery_captions

    if json_out is not None:
        check_out_file(json_out)
    check_sampling_options(generation_steps, 1.0, steps_option="--generation-steps")
    config = EvalConfig(split=split, tasks=comma_list(tasks, "--tasks"), categories=comma_list(categories, "--categories"),
                        cmr_queries=cmr_queries, caption_items=caption_items, generation_items=generation_items,
                        tryon_items=tryon_items, generation_steps=generation_steps, batch_size=batch_size, seed=seed)
    sources = find_sources(data)
    sources.check_tasks(config.tasks)  # before the model loads: a wrong request fails at once
    if gallery_captions is not None and caption_gallery:
        raise UnifashionError("--gallery-captions and --caption-gallery: give one")
    stored = None
    if gallery_captions is not None:
        try:
            stored = read_gallery_captions(gallery_captions)
        except DataError as e:
            raise UnifashionError(f"--gallery-captions {e}") from None
    net = load_model(model, json_on_stdout=as_json)
    start = time.perf_counter()
    with StageProgress(json_on_stdout=as_json) as progress:
        if caption_gallery and "cir" in config.tasks:
            images = fashioniq_gallery(sources.fashioniq, split or EVAL_SPLITS["fashioniq"], config.categories)
            stored = caption_images(net, images, style="detailed",
                                    progress=lambda d, t: progress("gallery captions", d, t))
        details = EvalDetails() if report is not None else None
        metrics = evaluate(net, sources, config, gallery_captions=stored, progress=progress, details=details)
    result = {**metrics, "meta": evaluation_meta(str(model), sources, config, time.perf_counter() - start)}
    if report is not None:
        from unifashion.evaluation.report import write_eval_report

        err.print(f"report: {write_eval_report(report, metrics, result['meta'], details)}")
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if json_out is not None:
        write_text_atomic(json_out, text)
        err.print(f"wrote {json_out}")
    if as_json:
        sys.stdout.write(text)
        return
    table = Table("metric", "value", title=f"{model} on {', '.join(sources.describe().values())}")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.2f}")
    Console().print(table)
    if tables:
        from unifashion.evaluation.paper_tables import paper_tables

        for t in paper_tables(metrics, result["meta"]["data"]):
            shaped = Table("", *t.columns, title=t.title)
            for label, values in t.rows:
                shaped.add_row(label, *("–" if v is None else f"{v:.2f}" for v in values))
            Console().print(shaped)

