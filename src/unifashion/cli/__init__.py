"""The `unifashion` command line: the only place that parses arguments.

Every command has --help, prints one clear line and exits non-zero on failure, and prints JSON on
stdout with --json (progress and messages go to stderr, so stdout stays machine-readable).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from unifashion.errors import UnifashionError

app = typer.Typer(
    help="UniFashion: one fashion vision-language model for retrieval, composed retrieval, captioning and generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Read, check and show datasets in their release formats.", no_args_is_help=True)
app.add_typer(data_app, name="data")
model_app = typer.Typer(help="Build, load and describe UniFashion models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
index_app = typer.Typer(help="Build and change a catalog search index (query vectors, gallery captions, items).",
                        no_args_is_help=True)
app.add_typer(index_app, name="index")
err = Console(stderr=True)


def _one_line(message: str) -> str:
    """A message as one line: a line break inside it (from a file name or a quoted value) shown as \\n."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


# Longest query, modification or prompt text the commands take (the service's limit too). The
# Q-Former reads at most `max_text_length` tokens (64) of a text and the tokenizer truncates
# explicitly to that; a text far longer than any query is refused rather than silently cut.
MAX_TEXT_CHARS = 1000


def _check_text(value: str, option: str) -> str:
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


def _report_skipped(skipped: list[dict]) -> None:
    """Each skipped item and why, one line each on stderr (--skip-bad)."""
    for s in skipped:
        err.print(f"skipped {escape(_one_line(s['item']))}: {escape(_one_line(s['reason']))}", highlight=False,
                  soft_wrap=True)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class _StageProgress:
    """A rich progress bar per stage, on stderr; silent when stderr is not a terminal and quiet is set."""

    def __init__(self, quiet: bool) -> None:
        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_StageProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done)


@app.command()
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

    config = WorldConfig(CatalogConfig(products=products, seed=seed, holdout=holdout), image_size=image_size,
                         workers=workers)
    start = time.perf_counter()
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        manifest = write_world(out, config, overwrite=overwrite, progress=progress)
    seconds = time.perf_counter() - start
    if as_json:
        _print_json({**manifest, "out": str(out), "seconds": round(seconds, 2)})
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

    root = Path(root)
    if not root.is_dir():
        raise UnifashionError(f"{root}: not a directory")
    if (root / "manifest.json").is_file():  # a synthetic world: every format inside it
        from unifashion.data.synthetic.world import FORMAT_DIRS

        summaries = [summarize(root / d, skip_bad=skip_bad, check_images=check_images)
                     for d in FORMAT_DIRS if (root / d).is_dir()]
    else:
        summaries = [summarize(root, skip_bad=skip_bad, check_images=check_images)]
    if as_json:
        _print_json(summaries[0] if len(summaries) == 1 else {"root": str(root), "formats": summaries})
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
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    n: Annotated[int, typer.Option(help="Number of products shown.", min=1, max=200)] = 24,
    columns: Annotated[int, typer.Option(help="Images per row.", min=1, max=20)] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was drawn as JSON.")] = False,
) -> None:
    """Draw a grid of product images with their short titles (one image per product)."""
    from unifashion.data.contact_sheet import contact_sheet

    root = Path(root)
    catalog_dir = root / "catalog" if (root / "catalog").is_dir() else root
    shown = contact_sheet(catalog_dir, out, n=n, columns=columns)
    if as_json:
        _print_json({"out": str(out), "items": shown})
    else:
        err.print(f"wrote {out} ({len(shown)} products)")


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="A dataset folder (catalog, FashionGen, Fashion200K, Fashion-IQ) or a synthetic world.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, metrics.jsonl, and the trained model in OUT/model.")],
    phase: Annotated[str, typer.Option(help="vae | phase1a | phase1b | phase2 | tryon (see training/phases.py).")],
    init: Annotated[Path | None, typer.Option(help="Start from this saved model (e.g. the previous phase's OUT/model).")] = None,
    config: Annotated[str, typer.Option(help="Model config when not --init: embedded, quickstart, paper, tiny or a YAML/JSON file.")] = "embedded",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a model config value (not with --init): KEY=VALUE.")] = None,
    phase_set: Annotated[list[str] | None, typer.Option("--phase-set", help="Override a phase setting (training/phases.py): KEY=VALUE, e.g. train_diffusion=false.")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.", min=1)] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per process per micro-batch.", min=1)] = 32,
    grad_accumulation: Annotated[int, typer.Option("--grad-accumulation", help="Micro-batches per optimizer step.", min=1)] = 1,
    lr: Annotated[float | None, typer.Option(help="Learning rate of the phase's main group (default: the phase's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data order and every random draw.")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between checkpoints.", min=1)] = 100,
    mixed_precision: Annotated[str, typer.Option("--mixed-precision", help="no | fp16 | bf16 (GPUs).")] = "no",
    resume: Annotated[bool, typer.Option(help="Continue the run in OUT from its newest checkpoint.")] = False,
    cache: Annotated[Path | None, typer.Option(help="Frozen image-encoder feature cache (default OUT/feature_cache).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip and report bad data items.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train one phase on one CPU, or on many GPUs/machines under `accelerate launch -m unifashion train ...`."""
    from unifashion.models.unified import load_config
    from unifashion.training import phases
    from unifashion.training.run_phase import run_phase
    from unifashion.training.trainer import TrainConfig

    choices = {"vae": phases.AutoencoderPretraining, "phase1a": phases.QFormerPretraining,
               "phase1b": phases.GenerativeAdaptation, "phase2": phases.ComposedFinetuning,
               "tryon": phases.GarmentGeneration}
    if phase not in choices:
        raise UnifashionError(f"--phase {phase!r}: expected one of {', '.join(choices)}")
    settings = _parse_overrides(phase_set or [], flag="--phase-set", example="train_diffusion=false")
    if lr is not None:
        settings[{"phase1b": "llm_lr", "tryon": "diffusion_lr"}.get(phase, "lr")] = lr
    chosen = phases.with_settings(choices[phase](), settings)
    if init is not None and set_:
        raise UnifashionError(f"--set {set_[0]!r}: model config overrides apply to a new model (--config), "
                              f"not to --init {init}, whose config is saved with it")
    model_config = None if init is not None else load_config(config, _parse_overrides(set_ or []))
    train_config = TrainConfig(steps=steps, batch_size=batch_size, grad_accumulation=grad_accumulation, seed=seed,
                               checkpoint_every=checkpoint_every, mixed_precision=mixed_precision)
    summary = run_phase(chosen, data, out, train_config, init=init, model_config=model_config, resume=resume,
                        cache=cache, progress=not as_json or err.is_terminal, skip_bad=skip_bad)
    if not summary.pop("main_process"):  # under accelerate launch, the main process reports
        return
    if as_json:
        _print_json(summary)
    else:
        err.print(f"trained {phase} for {summary['steps']} steps; model saved to {summary['model']}")


@app.command()
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
    from unifashion.data.formats.common import write_text_atomic
    from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery, relative_caption_keywords
    from unifashion.models.unified import UniFashion

    from unifashion.models.captioner import STYLES

    if style not in STYLES:
        raise UnifashionError(f"--style {style!r}: unknown caption style (expected one of {', '.join(STYLES)})")
    root = data / "fashioniq" if (data / "manifest.json").is_file() else data
    which = "train" if fashion_iq_cap else split
    if which not in ("train", "val", "test"):
        raise UnifashionError(f"--split {split!r}: expected val or test")
    images = fashioniq_gallery(root, which)
    skipped: list[dict] = []
    if skip_bad:  # decode each image once up front: the bad ones are listed, the rest captioned
        images = _readable(images, skipped)
        _report_skipped(skipped)
    hints = relative_caption_keywords(fashioniq.load(root, "train")) if fashion_iq_cap else None
    net = UniFashion.from_pretrained(model)
    start = time.perf_counter()
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        result = caption_images(net, images, style=style, hints=hints, batch_size=batch_size,
                                max_new_tokens=max_new_tokens, progress=lambda d, t: progress("captioning", d, t))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    summary = {"out": str(out), "images": len(result), "split": which, "style": style,
               "keyword_prompts": len(hints) if hints is not None else 0,
               "seconds": round(time.perf_counter() - start, 2), "skipped": skipped}
    if as_json:
        _print_json(summary)
    else:
        err.print(f"wrote {len(result)} captions of {which} images to {out} in {summary['seconds']} s")


def _readable(images: list, skipped: list[dict]) -> list:
    """The (name, ImageRef) pairs whose image decodes; the others appended to `skipped`."""
    from unifashion.errors import DataError

    kept = []
    for name, ref in images:
        try:
            ref.load()
            kept.append((name, ref))
        except DataError as e:
            skipped.append({"item": name, "reason": str(e)})
    if not kept:
        raise UnifashionError(f"no readable images: all {len(images)} were bad "
                              f"(first: {skipped[0]['item']}: {skipped[0]['reason']})")
    return kept


def _comma_list(value: str | None, option: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UnifashionError(f"{option} {value!r}: expected a comma-separated list")
    return items


@app.command("eval")
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
    generation_steps: Annotated[int, typer.Option("--generation-steps", min=1)] = 25,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    seed: Annotated[int, typer.Option(help="Generation noise seed.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics and `meta` as JSON to this file ('-': stdout).")] = None,
    tables: Annotated[bool, typer.Option("--tables", help="Also print the paper's Tables 1-5 with our numbers beside UniFashion's.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a report (Markdown + HTML with plots) into this folder.")] = None,
) -> None:
    """Evaluate a model with the published protocols: cross-modal retrieval (sample-100 and full gallery),
    composed retrieval (Fashion-IQ), captions (BLEU-4, METEOR, ROUGE-L, CIDEr), generation and try-on."""
    from unifashion.data.formats.common import write_text_atomic
    from unifashion.evaluation.evaluate import EvalConfig, EvalDetails, evaluate, evaluation_meta
    from unifashion.data.sources import EVAL_SPLITS, find_sources
    from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery
    from unifashion.models.unified import UniFashion

    config = EvalConfig(split=split, tasks=_comma_list(tasks, "--tasks"), categories=_comma_list(categories, "--categories"),
                        cmr_queries=cmr_queries, caption_items=caption_items, generation_items=generation_items,
                        tryon_items=tryon_items, generation_steps=generation_steps, batch_size=batch_size, seed=seed)
    sources = find_sources(data)
    sources.check_tasks(config.tasks)  # before the model loads: a wrong request fails at once
    if gallery_captions is not None and caption_gallery:
        raise UnifashionError("--gallery-captions and --caption-gallery: give one")
    stored = None
    if gallery_captions is not None:
        try:
            stored = json.loads(gallery_captions.read_text())
        except (OSError, ValueError) as e:
            raise UnifashionError(f"--gallery-captions {gallery_captions}: cannot read it as JSON ({e})") from None
        if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
            raise UnifashionError(f"--gallery-captions {gallery_captions}: expected {{image name: caption}}")
    net = UniFashion.from_pretrained(model)
    start = time.perf_counter()
    quiet = json_out is not None and str(json_out) == "-" and not err.is_terminal
    with _StageProgress(quiet=quiet) as progress:
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
    if json_out is not None and str(json_out) == "-":
        sys.stdout.write(text)
        return
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_out, text)
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
    if json_out is not None:
        err.print(f"wrote {json_out}")


@app.command()
def ablate(
    data: Annotated[Path, typer.Option(help="A synthetic world, or a folder with image-text pairs and Fashion-IQ.")],
    out: Annotated[Path, typer.Option(help="Folder for the runs, ablation.json and table.md.")],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per variant (mean ± std over them).")] = 3,
    config: Annotated[str, typer.Option(help="Model config: quickstart, embedded, tiny or a YAML/JSON file.")] = "quickstart",
    phase1a_steps: Annotated[int | None, typer.Option("--phase1a-steps", min=1, show_default="80")] = None,
    phase1b_steps: Annotated[int | None, typer.Option("--phase1b-steps", min=1, show_default="32")] = None,
    vae_steps: Annotated[int | None, typer.Option("--vae-steps", min=1, show_default="100")] = None,
    phase2_steps: Annotated[int | None, typer.Option("--phase2-steps", min=1, show_default="20")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The paper's Table 5 under equal budgets: Base, +LLM, +LLM with captions, +LLM+diffusion."""
    from dataclasses import replace

    from unifashion.recipes.ablation import AblationConfig, run_ablation, table_markdown

    given = {"model_config": config, "phase1a_steps": phase1a_steps, "phase1b_steps": phase1b_steps,
             "vae_steps": vae_steps, "phase2_steps": phase2_steps}
    ac = replace(AblationConfig(seeds=tuple(range(seeds))), **{k: v for k, v in given.items() if v is not None})
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        summary = run_ablation(data, out, ac, progress=progress, log=lambda line: err.print(line))
    if as_json:
        _print_json(summary)
    else:
        Console().print(table_markdown(summary["table"], summary["seconds"], ac), highlight=False)


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the world, the runs, the trained model and the report.")] = Path("quickstart"),
    config: Annotated[str | None, typer.Option(help="Model config: quickstart (default), embedded, tiny or a YAML/JSON file.")] = None,
    products: Annotated[int | None, typer.Option(min=10, help="Synthetic products (about 70% held out for evaluation).",
                                                 show_default="4000")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", min=32, help="World image size.", show_default="128")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=2, show_default="16")] = None,
    vae_steps: Annotated[int | None, typer.Option("--vae-steps", min=1, show_default="900")] = None,
    phase1a_steps: Annotated[int | None, typer.Option("--phase1a-steps", min=1, show_default="200")] = None,
    phase1b_steps: Annotated[int | None, typer.Option("--phase1b-steps", min=1, show_default="500")] = None,
    diffusion_steps: Annotated[int | None, typer.Option("--diffusion-steps", min=0,
                                                        help="Extra q2I-only generator steps after phase 1b.", show_default="400")] = None,
    phase2_steps: Annotated[int | None, typer.Option("--phase2-steps", min=1, show_default="60")] = None,
    tryon_steps: Annotated[int | None, typer.Option("--tryon-steps", min=0,
                                                    help="Try-on phase steps (0 skips try-on).", show_default="300")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics summary as JSON.")] = False,
) -> None:
    """Synthetic world -> every training phase -> evaluation of all four tasks before and after -> report.

    The defaults fit ~30 minutes on 2 CPU cores; the report states the sizes used and its wall time."""
    from dataclasses import replace

    from unifashion.recipes.quickstart import QuickstartConfig, run_quickstart

    given = {"model_config": config, "products": products, "image_size": image_size, "batch_size": batch_size,
             "vae_steps": vae_steps, "phase1a_steps": phase1a_steps, "phase1b_steps": phase1b_steps,
             "diffusion_steps": diffusion_steps, "phase2_steps": phase2_steps, "tryon_steps": tryon_steps}
    qc = replace(QuickstartConfig(seed=seed), **{k: v for k, v in given.items() if v is not None})
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        summary = run_quickstart(out, qc, progress=progress, log=lambda line: err.print(line))
    if as_json:
        _print_json(summary)
    else:
        err.print(f"quickstart done in {summary['seconds']:.0f} s: report {out / 'report.md'}, model {summary['model']}, "
                  f"search index {summary['index']['path']} ({summary['index']['items']} items)")
        err.print(f"serve it: unifashion serve --index {summary['index']['path']}  (then open http://127.0.0.1:8000)")


def _parse_overrides(items: list[str], flag: str = "--set", example: str = "qformer.pretrained=/models/blip2") -> dict:
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


@model_app.command("info")
def model_info(
    config: Annotated[str, typer.Option(help="A shipped config (embedded, quickstart, paper, tiny) or a YAML/JSON file.")] = "embedded",
    model: Annotated[Path | None, typer.Option(help="A saved model directory (instead of --config).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config value: KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Build (or load) the model and print each part's parameters, what is frozen and where its weights came from."""
    from unifashion.config import to_dict
    from unifashion.models.unified import UniFashion, load_config

    start = time.perf_counter()
    if model is not None:
        if set_:
            raise UnifashionError("--set applies to --config, not to a saved --model")
        net = UniFashion.from_pretrained(model)
    else:
        net = UniFashion.from_config(load_config(config, _parse_overrides(set_ or [])))
    seconds = time.perf_counter() - start
    rows = net.parts_summary()
    summary = {"model": str(model) if model else config, "build_seconds": round(seconds, 2), "parts": rows,
               "total_parameters": sum(r["parameters"] for r in rows),
               "trainable_parameters": sum(r["trainable"] for r in rows), "config": to_dict(net.config)}
    if as_json:
        _print_json(summary)
        return
    table = Table("part", "parameters", "trainable", "frozen", "weights from")
    for r in rows:
        table.add_row(r["part"], f"{r['parameters']:,}", f"{r['trainable']:,}", f"{r['frozen']:,}", r["source"])
    table.add_row("total", f"{summary['total_parameters']:,}", f"{summary['trainable_parameters']:,}",
                  f"{summary['total_parameters'] - summary['trainable_parameters']:,}", "")
    Console().print(table)
    err.print(f"built in {seconds:.1f} s")


# ---- catalog search: index, search, caption, generate, classify, serve ----------------------------


def _load_model(path: Path):
    from unifashion.models.unified import UniFashion

    return UniFashion.from_pretrained(path)


def _catalog_items(data: Path | None, images: Path | None, split: str | None, skip_bad: bool = False,
                   skipped: list[dict] | None = None):
    from unifashion.search.index_build import items_from_data, items_from_images

    if (data is None) == (images is None):
        raise UnifashionError("give exactly one of --data (a dataset folder or world) and --images (a folder of images)")
    if data is not None:
        return items_from_data(data, split, skip_bad=skip_bad, skipped=skipped)
    return items_from_images(images)


def _ann_config(exact_below: int | None, nprobe: int | None, candidates: int | None):
    from dataclasses import replace

    from unifashion.search.vector_index import AnnConfig

    given = {"exact_below": exact_below, "nprobe": nprobe, "candidates": candidates}
    return replace(AnnConfig(), **{k: v for k, v in given.items() if v is not None})


def _mode(approximate: bool | None) -> str:
    return "by size" if approximate is None else ("approximate" if approximate else "exact")


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Option(help="A trained model directory (it encodes the catalog and writes the gallery captions).")],
    out: Annotated[Path, typer.Option(help="Index folder to write.")],
    data: Annotated[Path | None, typer.Option(help="A synthetic world or a folder with image-text pairs (our catalog, FashionGen, Fashion200K).")] = None,
    images: Annotated[Path | None, typer.Option(help="A folder of images (one item per file; subfolders become categories).")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of --data (default: every split).")] = None,
    captions: Annotated[bool, typer.Option("--captions/--no-captions", help="Write a gallery caption per item (caption re-ranking and image-to-text search need them).")] = True,
    approximate: Annotated[bool | None, typer.Option("--approximate/--exact", help="Force IVF-PQ candidates or exact scoring (default: by size).", show_default="by size")] = None,
    exact_below: Annotated[int | None, typer.Option("--exact-below", min=1, help="Exact scoring below this many items.", show_default="20000")] = None,
    nprobe: Annotated[int | None, typer.Option(min=1, help="IVF lists visited per query vector.", show_default="64")] = None,
    candidates: Annotated[int | None, typer.Option(min=1, help="Items re-scored exactly per approximate query.", show_default="max(200, items / 1250)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index at --out.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard a partial build at --out instead of resuming it.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad items (unreadable images, malformed records), list them on stderr and in --json, and go on if any item is left.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the index summary as JSON.")] = False,
) -> None:
    """Embed a catalog into a search index (resumes an interrupted build of the same model and items)."""
    from unifashion.search.index_build import build_index

    skipped: list[dict] = []
    items = _catalog_items(data, images, split, skip_bad, skipped)
    net = _load_model(model)
    start = time.perf_counter()
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        index = build_index(net, items, out, model_source=str(model.resolve()), captions=captions,
                            ann=_ann_config(exact_below, nprobe, candidates), approximate=approximate,
                            overwrite=overwrite, restart=restart, batch_size=batch_size, progress=progress,
                            skip_bad=skip_bad, skipped=skipped)
    _report_skipped(skipped)
    summary = {**index.describe(), "seconds": round(time.perf_counter() - start, 2), "skipped": skipped}
    if as_json:
        _print_json(summary)
    else:
        err.print(f"indexed {len(index)} items into {out} in {summary['seconds']} s "
                  f"({'approximate' if any(s['approximate'] for s in summary['segments']) else 'exact'} search)")


@index_app.command("add")
def index_add(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    data: Annotated[Path | None, typer.Option(help="A dataset folder or world whose items to add.")] = None,
    images: Annotated[Path | None, typer.Option(help="A folder of images to add.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of --data.")] = None,
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace items already in the index (otherwise they are an error).")] = False,
    approximate: Annotated[bool | None, typer.Option("--approximate/--exact", show_default="by size")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip bad items (unreadable images, malformed records), list them on stderr and in --json, and go on if any item is left.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add items to an index without rebuilding it (a new segment)."""
    from unifashion.search.index_build import add_to_index
    from unifashion.search.catalog_index import CatalogIndex

    idx = CatalogIndex.open(index)
    skipped: list[dict] = []
    items = _catalog_items(data, images, split, skip_bad, skipped)
    net = _load_model(model or Path(idx.manifest["model"]["source"]))
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        added = add_to_index(net, idx, items, replace=replace, approximate=approximate, batch_size=batch_size,
                             progress=progress, skip_bad=skip_bad, skipped=skipped)
    _report_skipped(skipped)
    if as_json:
        _print_json({"added": added, **idx.describe(), "skipped": skipped})
    else:
        err.print(f"added {added} items; the index now holds {len(idx)}")


@index_app.command("remove")
def index_remove(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    item_ids: Annotated[list[str], typer.Argument(help="Item ids to remove.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove items from an index (recorded in its manifest; `index compact` drops their vectors)."""
    from unifashion.search.catalog_index import CatalogIndex

    idx = CatalogIndex.open(index)
    idx.remove(item_ids)
    if as_json:
        _print_json({"removed": len(item_ids), **idx.describe()})
    else:
        err.print(f"removed {len(item_ids)} items; the index now holds {len(idx)}")


@index_app.command("compact")
def index_compact(
    index: Annotated[Path, typer.Option(help="The index folder.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rewrite an index as one segment without its removed items (the ANN index is rebuilt by size)."""
    from unifashion.search.catalog_index import CatalogIndex

    idx = CatalogIndex.open(index)
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        idx.compact(progress=progress)
    if as_json:
        _print_json(idx.describe())
    else:
        err.print(f"compacted {index}: {len(idx)} items in one segment")


@index_app.command("info")
def index_info(
    index: Annotated[Path, typer.Argument(help="The index folder.")],
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check every file's sha256.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Describe an index (items, segments, model, search settings) after checking its files."""
    from unifashion.search.catalog_index import CatalogIndex

    summary = CatalogIndex.open(index, verify=verify).describe()
    if as_json:
        _print_json(summary)
        return
    table = Table("segment", "items", "search")
    for seg in summary["segments"]:
        table.add_row(seg["name"], str(seg["items"]), "IVF-PQ + exact re-scoring" if seg["approximate"] else "exact")
    Console().print(table)
    err.print(f"{summary['items']} live items ({summary['removed']} removed), {summary['num_queries']} query vectors "
              f"of {summary['embed_dim']} each, gallery captions: {'yes' if summary['captions'] else 'no'}; "
              f"model {summary['model']['source']} ({summary['model']['fingerprint'][:12]})")


def _open_search(index: Path, model: Path | None, verify: bool = True):
    from unifashion.search.engine import CatalogSearch
    from unifashion.search.catalog_index import CatalogIndex

    idx = CatalogIndex.open(index, verify=verify)
    model_dir = model or Path(idx.manifest["model"]["source"])
    if not (model_dir / "config.json").is_file():
        raise UnifashionError(f"{model_dir}: the index's model is not there; give --model")
    return CatalogSearch(_load_model(model_dir), idx)


@app.command()
def search(
    index: Annotated[Path, typer.Option(help="An index folder from `unifashion index build`.")],
    text: Annotated[str | None, typer.Option(help="Find items by words.")] = None,
    image: Annotated[Path | None, typer.Option(help="Find items like this photo (with --modify: composed search).")] = None,
    item: Annotated[str | None, typer.Option(help="Start a composed search from this catalog item (needs --modify).")] = None,
    modify: Annotated[str | None, typer.Option(help="\"this one, but ...\": the modification text of a composed search.")] = None,
    k: Annotated[int, typer.Option(min=1, max=1000, help="Results to return.")] = 10,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories (repeatable).")] = None,
    to_text: Annotated[bool, typer.Option("--to-text", help="With --image: rank items by how well their gallery caption describes the photo.")] = False,
    rerank: Annotated[bool, typer.Option("--rerank/--no-rerank", help="Composed search: re-rank with the gallery captions.")] = True,
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Search a catalog index by text, by image, or by an image (or item) plus a modification text."""
    from dataclasses import asdict

    from unifashion.data.samples import ImageRef

    given = [name for name, v in (("--text", text), ("--image", image), ("--item", item)) if v is not None]
    if len(given) != 1:
        raise UnifashionError("give exactly one query: --text, --image or --item")
    if item is not None and modify is None:
        raise UnifashionError("--item needs --modify (the change to make to that item)")
    if modify is not None and text is not None:
        raise UnifashionError("--modify goes with --image or --item, not --text")
    if to_text and (image is None or modify is not None):
        raise UnifashionError("--to-text goes with --image alone")
    text = _check_text(text, "--text") if text is not None else None
    modify = _check_text(modify, "--modify") if modify is not None else None
    photo = ImageRef(image).load_rgb() if image is not None else None  # a bad photo fails before the model loads
    engine = _open_search(index, model)
    start = time.perf_counter()
    if text is not None:
        kind, hits = "text", engine.text([text], k, category)[0]
    elif item is not None:
        kind, hits = "composed", engine.composed_from_item(item, modify, k, rerank=rerank, categories=category)
    else:
        if modify is not None:
            kind, hits = "composed", engine.composed([photo], [modify], k, rerank=rerank, categories=category)[0]
        elif to_text:
            kind, hits = "image-to-text", engine.image_to_text([photo], k, category)[0]
        else:
            kind, hits = "image", engine.image([photo], k, category)[0]
    took = round(1000 * (time.perf_counter() - start), 1)
    if as_json:
        _print_json({"kind": kind, "took_ms": took, "hits": [asdict(h) for h in hits]})
        return
    table = Table("#", "item", "score", "category", "title", "gallery caption")
    for rank, h in enumerate(hits, 1):
        table.add_row(*(escape(str(v)) for v in (rank, h.item_id, f"{h.score:.4f}", h.subcategory or h.category,
                                                 h.title, h.caption)))
    Console().print(table)
    err.print(f"{kind} search: {len(hits)} hits in {took} ms")


def _read_images(paths: list[Path]):
    from unifashion.data.samples import ImageRef

    if not paths:
        raise UnifashionError("give at least one image")
    return [ImageRef(p).load_rgb() for p in paths]


@app.command()
def caption(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files to describe.")],
    style: Annotated[str, typer.Option(help="short | professional | detailed")] = "professional",
    num_beams: Annotated[int, typer.Option("--num-beams", min=1)] = 1,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write product descriptions of images (the LLM reads the Q-Former's queries)."""
    pictures = _read_images(images)
    from unifashion.models.captioner import STYLES

    if style not in STYLES:
        raise UnifashionError(f"--style {style!r}: unknown caption style (expected one of {', '.join(STYLES)})")
    texts = _load_model(model).caption(pictures, style, num_beams=num_beams, max_new_tokens=max_new_tokens)
    if as_json:
        _print_json([{"image": str(p), "caption": t} for p, t in zip(images, texts)])
    else:
        for p, t in zip(images, texts):
            Console().print(escape(f"{p}: {t}"), highlight=False, soft_wrap=True)


@app.command()
def generate(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    out: Annotated[Path, typer.Option(help="PNG file to write (with --n > 1: OUT_0.png, OUT_1.png, ...).")],
    text: Annotated[str | None, typer.Option(help="What to draw, or how to change --image.")] = None,
    image: Annotated[Path | None, typer.Option(help="A reference garment image.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, max=64, help="Pictures to draw (seeds seed, seed+1, ...).")] = 1,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Denoising steps.")] = 25,
    sampler: Annotated[str, typer.Option(help="dpm++ | plms")] = "dpm++",
    guidance_scale: Annotated[float, typer.Option("--guidance-scale", min=0.0)] = 3.0,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Draw garments from words, a reference image or both (latent diffusion conditioned on the queries)."""
    from unifashion.data.formats.common import save_image_atomic

    if text is None and image is None:
        raise UnifashionError("give --text, --image or both")
    if sampler not in ("dpm++", "plms"):
        raise UnifashionError(f"--sampler {sampler!r}: expected dpm++ or plms")
    if out.suffix.lower() != ".png":
        raise UnifashionError(f"--out {out}: expected a .png file name")
    text = _check_text(text, "--text") if text is not None else None
    reference = _read_images([image]) if image is not None else None
    net = _load_model(model)
    written = []
    with _StageProgress(quiet=as_json and not err.is_terminal) as progress:
        for i in range(n):
            picture = net.generate([text] if text is not None else None, reference, steps=steps, sampler=sampler,
                                   guidance_scale=guidance_scale, seed=seed + i,
                                   progress=lambda d, t, i=i: progress(f"picture {i + 1}/{n}", d, t))[0]
            path = out if n == 1 else out.with_name(f"{out.stem}_{i}{out.suffix}")
            save_image_atomic(picture, path)
            written.append(str(path))
    if as_json:
        _print_json({"images": written, "size": list(picture.size), "steps": steps, "sampler": sampler})
    else:
        err.print(f"wrote {', '.join(written)} ({picture.size[0]}x{picture.size[1]}, {steps} {sampler} steps)")


@app.command()
def classify(
    model: Annotated[Path, typer.Option(help="A trained model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
    labels: Annotated[str, typer.Option(help="Comma-separated labels, e.g. 'dress,shirt,jeans'.")],
    top: Annotated[int, typer.Option(min=1, help="Labels to show per image.")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Zero-shot classification: each image against prompts made from the labels."""
    names = tuple(_check_text(name, "--labels") for name in _comma_list(labels, "--labels"))
    pictures = _read_images(images)
    probs = _load_model(model).classify(pictures, list(names)).float().numpy()  # (B, L)
    ranked = [sorted(zip(names, map(float, row)), key=lambda x: -x[1])[:top] for row in probs]
    if as_json:
        _print_json([{"image": str(p), "labels": [{"label": l, "probability": v} for l, v in r]}
                     for p, r in zip(images, ranked)])
    else:
        for p, r in zip(images, ranked):
            Console().print(escape(f"{p}: " + ", ".join(f"{l} {v:.2f}" for l, v in r)), highlight=False, soft_wrap=True)


@app.command()
def serve(
    index: Annotated[Path, typer.Option(help="An index folder from `unifashion index build` (the quickstart writes OUT/index).")],
    model: Annotated[Path | None, typer.Option(help="The model that built the index (default: the one its manifest names).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Most denoising steps a generation request may ask for.")] = 50,
    generation_seconds: Annotated[float, typer.Option("--generation-seconds", min=1.0, help="A generation running longer is aborted (504).")] = 60.0,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest accepted image upload.")] = 10.0,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="UNIFASHION_API_KEY", help="Require this key (header X-API-Key or Authorization: Bearer) for /api/* and /items/*. Prefer the environment variable: a flag shows in `ps`.")] = None,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Let pages from this origin (https://shop.example) call the API from a browser; repeatable. Default: none.")] = None,
) -> None:
    """Serve catalog search (text, image, composed), captions, generation and classification over HTTP,
    with a web page at / and the API's docs at /docs."""
    import socket
    from dataclasses import replace

    from unifashion.search.catalog_index import CatalogIndex
    from unifashion.service.app import ServiceAccess, ServiceLimits, serve as run_server

    access = ServiceAccess(api_key=api_key, cors_origins=tuple(cors_origin or ()))  # checked before loading anything

    model_dir = model or Path(CatalogIndex.open(index, verify=False).manifest["model"]["source"])
    if not (model_dir / "config.json").is_file():
        raise UnifashionError(f"{model_dir}: the index's model is not there; give --model")
    with socket.socket() as probe:  # a clear line now rather than uvicorn's log after loading the model
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UnifashionError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    limits = replace(ServiceLimits(), max_steps=max_steps, generation_seconds=generation_seconds,
                     max_upload_bytes=int(max_upload_mb * 2**20))
    err.print(f"loading {model_dir} and {index} ...")
    run_server(model_dir, index, host=host, port=port, limits=limits, access=access)


def main() -> None:
    """Entry point: user-facing errors become one line on stderr and exit code 1."""
    try:
        code = app(standalone_mode=False)  # we print errors ourselves: one line each
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except TyperException as e:  # usage errors (typer vendors click; these are its ClickExceptions)
        if type(e).__name__ == "NoArgsIsHelpError":  # bare command group: its help, as click does
            Console().print(e.format_message(), highlight=False)
            sys.exit(2)
        ctx = getattr(e, "ctx", None)
        command = ctx.command_path if ctx else "unifashion"
        err.print(f"[red]error:[/red] {escape(command)}: {escape(e.format_message())} (see --help)", highlight=False,
                  soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except UnifashionError as e:
        err.print(f"[red]error:[/red] {escape(_one_line(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug: one line, the traceback only on request
        if os.environ.get("UNIFASHION_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(_one_line(str(e)))} "
                  "(set UNIFASHION_DEBUG=1 for a traceback)", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
