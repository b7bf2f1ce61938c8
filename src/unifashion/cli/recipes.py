"""`unifashion ablate` and `unifashion quickstart`: the recipes that chain data, training and evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from unifashion.cli.options import with_given
from unifashion.cli.output import StageProgress, err, print_json
from unifashion.recipes.budgets import ABLATION_BUDGET, QUICKSTART_BUDGET


def ablate(
    data: Annotated[Path, typer.Option(help="A synthetic world, or a folder with image-text pairs and Fashion-IQ.")],
    out: Annotated[Path, typer.Option(help="Folder for the runs, ablation.json and table.md.")],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per variant (mean ± std over them).")] = len(ABLATION_BUDGET.seeds),
    config: Annotated[str, typer.Option(help="Model config: quickstart, embedded, tiny or a YAML/JSON file.")] = "quickstart",
    phase1a_steps: Annotated[int | None, typer.Option("--phase1a-steps", min=1, show_default=str(ABLATION_BUDGET.phase1a_steps))] = None,
    phase1b_steps: Annotated[int | None, typer.Option("--phase1b-steps", min=1, show_default=str(ABLATION_BUDGET.phase1b_steps))] = None,
    vae_steps: Annotated[int | None, typer.Option("--vae-steps", min=1, show_default=str(ABLATION_BUDGET.vae_steps))] = None,
    phase2_steps: Annotated[int | None, typer.Option("--phase2-steps", min=1, show_default=str(ABLATION_BUDGET.phase2_steps))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The paper's Table 5 under equal budgets: Base, +LLM, +LLM with captions, +LLM+diffusion."""
    from unifashion.recipes.ablation import AblationConfig, run_ablation, table_markdown

    given = {"model_config": config, "phase1a_steps": phase1a_steps, "phase1b_steps": phase1b_steps,
             "vae_steps": vae_steps, "phase2_steps": phase2_steps}
    ac = with_given(AblationConfig(seeds=tuple(range(seeds))), given)
    with StageProgress(json_on_stdout=as_json) as progress:
        summary = run_ablation(data, out, ac, progress=progress, log=lambda line: err.print(line))
    if as_json:
        print_json(summary)
    else:
        Console().print(table_markdown(summary["table"], summary["seconds"], ac), highlight=False)


def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the world, the runs, the trained model and the report.")] = Path("quickstart"),
    config: Annotated[str | None, typer.Option(help="Model config: quickstart (default), embedded, tiny or a YAML/JSON file.")] = None,
    products: Annotated[int | None, typer.Option(min=10, help="Synthetic products (about 70% held out for evaluation).",
                                                 show_default=str(QUICKSTART_BUDGET.products))] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", min=32, help="World image size.", show_default=str(QUICKSTART_BUDGET.image_size))] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=2, show_default=str(QUICKSTART_BUDGET.batch_size))] = None,
    vae_steps: Annotated[int | None, typer.Option("--vae-steps", min=1, show_default=str(QUICKSTART_BUDGET.vae_steps))] = None,
    phase1a_steps: Annotated[int | None, typer.Option("--phase1a-steps", min=1, show_default=str(QUICKSTART_BUDGET.phase1a_steps))] = None,
    phase1b_steps: Annotated[int | None, typer.Option("--phase1b-steps", min=1, show_default=str(QUICKSTART_BUDGET.phase1b_steps))] = None,
    diffusion_steps: Annotated[int | None, typer.Option("--diffusion-steps", min=0,
                                                        help="Extra q2I-only generator steps after phase 1b.", show_default=str(QUICKSTART_BUDGET.diffusion_steps))] = None,
    phase2_steps: Annotated[int | None, typer.Option("--phase2-steps", min=1, show_default=str(QUICKSTART_BUDGET.phase2_steps))] = None,
    tryon_steps: Annotated[int | None, typer.Option("--tryon-steps", min=0,
                                                    help="Try-on phase steps (0 skips try-on).", show_default=str(QUICKSTART_BUDGET.tryon_steps))] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics summary as JSON.")] = False,
) -> None:
    """Synthetic world -> every training phase -> evaluation of all four tasks before and after -> report.

    The defaults fit ~30 minutes on 2 CPU cores; the report states the sizes used and its wall time."""
    from unifashion.recipes.quickstart import QuickstartConfig, run_quickstart

    given = {"model_config": config, "products": products, "image_size": image_size, "batch_size": batch_size,
             "vae_steps": vae_steps, "phase1a_steps": phase1a_steps, "phase1b_steps": phase1b_steps,
             "diffusion_steps": diffusion_steps, "phase2_steps": phase2_steps, "tryon_steps": tryon_steps}
    qc = with_given(QuickstartConfig(seed=seed), given)
    with StageProgress(json_on_stdout=as_json) as progress:
        summary = run_quickstart(out, qc, progress=progress, log=lambda line: err.print(line))
    if as_json:
        print_json(summary)
    else:
        err.print(f"quickstart done in {summary['seconds']:.0f} s: report {out / 'report.md'}, model {summary['model']}, "
                  f"search index {summary['index']['path']} ({summary['index']['items']} items)")
        tryon = f" --tryon-model {summary['tryon_model']}" if summary.get("tryon_model") else ""
        err.print(f"serve it: unifashion serve --index {summary['index']['path']}{tryon}  (then open http://127.0.0.1:8000)")

