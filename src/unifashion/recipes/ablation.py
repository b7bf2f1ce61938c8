"""The paper's Table 5 ablation under equal budgets: do the generation objectives help composed retrieval?

Variants, per seed (paper Table 5):
  Base          phase 1a -> phase 2 with L_cir alone (no LLM, no diffusion)
  +LLM          phase 1a -> phase 1b, ITG only -> phase 2 with L_cir + ITG
  +LLM w/ cap   the +LLM model; composed retrieval also scores its gallery captions
  +LLM+diff.    phase 1a -> VAE -> phase 1b, ITG + q2I -> phase 2 with L_cir + ITG + q2I; with captions
Equal budgets: every variant's Q-Former gets the same phase-1a and phase-2 steps (phase 1b freezes it),
and the variants of one seed start from the same phase-1a model. The table reports whatever it finds.

Stages: 1. shared phase 1a per seed  2. each variant's own phases  3. evaluation  4. mean ± std table.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from unifashion.storage import write_text_atomic
from unifashion.evaluation.evaluate import EvalConfig, evaluate
from unifashion.data.sources import EVAL_SPLITS, find_sources
from unifashion.evaluation.gallery_captions import caption_images, fashioniq_gallery
from unifashion.models.model_config import load_config
from unifashion.models.unified import UniFashion
from unifashion.recipes import phase_settings
from unifashion.recipes.budgets import AblationBudget
from unifashion.training import phases
from unifashion.training.run_phase import run_phase
from unifashion.training.trainer import TrainConfig

ProgressFn = Callable[[str, int, int], None]
VARIANTS = ("Base", "+LLM", "+LLM w/ cap", "+LLM+diff.")
# the table's columns: (label, metrics key)
COLUMNS = (("CMR", "cmr.sample100.mean"), ("CIR", "cir.avg.score"), ("FIC BLEU-4", "cap.bleu4"), ("FIG FID", "gen.fid"))


@dataclass(frozen=True)
class AblationConfig(AblationBudget):
    """The budgets every variant shares (budgets.AblationBudget), the model and the phase settings."""
    model_config: str = "quickstart"
    phase1a: phases.QFormerPretraining = phase_settings.PHASE1A
    phase1b: phases.GenerativeAdaptation = phase_settings.PHASE1B
    phase2: phases.ComposedFinetuning = phase_settings.PHASE2
    evaluation: EvalConfig = field(default_factory=lambda: EvalConfig(cmr_queries=300, cmr_seeds=(0, 1, 2),
                                                                      caption_items=40, generation_items=24))


def _variant_chains(config: AblationConfig) -> dict[str, list[tuple[str, object, int]]]:
    """The phases each trained variant runs after the shared phase 1a: (run name, phase, steps)."""
    no_generation = replace(config.phase2, itg_weight=0.0, q2i_weight=0.0)
    return {
        "Base": [("phase2-base", no_generation, config.phase2_steps)],
        "+LLM": [("phase1b-llm", replace(config.phase1b, train_diffusion=False), config.phase1b_steps),
                 ("phase2-llm", replace(config.phase2, q2i_weight=0.0), config.phase2_steps)],
        "+LLM+diff.": [("vae", phases.AutoencoderPretraining(), config.vae_steps),
                       ("phase1b-llm-diff", config.phase1b, config.phase1b_steps),
                       ("phase2-llm-diff", config.phase2, config.phase2_steps)],
    }


def run_ablation(data: Path, out: Path, config: AblationConfig = AblationConfig(),
                 progress: ProgressFn | None = None, log: Callable[[str], None] = print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = find_sources([Path(data)])
    sources.check_tasks(("cmr", "cir", "cap", "gen"))
    model_config = load_config(config.model_config)
    cache = out / "feature_cache"
    start = time.perf_counter()
    per_seed: dict[str, dict[str, dict]] = {}

    def train(name: str, phase, steps: int, init: Path | None, seed: int) -> Path:
        run_dir = out / f"seed{seed}" / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        run_phase(phase, data, run_dir, TrainConfig(steps=steps, batch_size=config.batch_size, seed=seed,
                                                    checkpoint_every=steps, log_every=max(1, steps // 10)),
                  init=init, model_config=model_config, cache=cache, progress=progress is not None)
        log(f"seed {seed} {name}: {time.perf_counter() - t0:.0f} s")
        return run_dir / "model"

    def score(model: UniFashion, tasks: tuple[str, ...], captions: dict | None = None) -> dict:
        return evaluate(model, sources, replace(config.evaluation, tasks=tasks), gallery_captions=captions,
                        progress=progress)

    def gallery_captions(model: UniFashion) -> dict[str, str]:
        split = config.evaluation.split or EVAL_SPLITS["fashioniq"]
        return caption_images(model, fashioniq_gallery(sources.fashioniq, split), style="detailed",
                              max_new_tokens=config.evaluation.max_new_tokens)

    for seed in config.seeds:
        # 1. the phase-1a model every variant of this seed starts from
        shared = train("phase1a", config.phase1a, config.phase1a_steps, None, seed)
        # 2. each variant's own phases, then 3. its evaluation
        finals = {}
        for variant, chain in _variant_chains(config).items():
            previous = shared
            for name, phase, steps in chain:
                previous = train(name, phase, steps, previous, seed)
            finals[variant] = previous
        base, llm, full = (UniFashion.from_pretrained(finals[v]) for v in ("Base", "+LLM", "+LLM+diff."))
        results = {"Base": score(base, ("cmr", "cir")), "+LLM": score(llm, ("cmr", "cir", "cap"))}
        results["+LLM w/ cap"] = {**results["+LLM"], **score(llm, ("cir",), gallery_captions(llm))}
        results["+LLM+diff."] = score(full, ("cmr", "cir", "cap", "gen"), gallery_captions(full))
        per_seed[str(seed)] = results
        log(f"seed {seed} done: " + "; ".join(f"{v} CIR {r['cir.avg.score']:.2f}" for v, r in results.items()))

    table = ablation_table(list(per_seed.values()))
    summary = {"data": str(data), "seconds": round(time.perf_counter() - start, 1), "config": asdict(config),
               "per_seed": per_seed, "table": table}
    write_text_atomic(out / "ablation.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "table.md", table_markdown(table, summary["seconds"], config) + "\n")
    return summary


def ablation_table(runs: list[dict[str, dict]]) -> dict[str, dict[str, dict | None]]:
    """{variant: {column: {"mean", "std", "n"} or None}} over the seeds' results (std with ddof=1; 0 for one seed)."""
    table = {}
    for variant in VARIANTS:
        row = {}
        for label, key in COLUMNS:
            values = [r[variant][key] for r in runs if key in r.get(variant, {})]
            row[label] = None if not values else {
                "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "n": len(values)}
        table[variant] = row
    return table


def table_markdown(table: dict, seconds: float, config: AblationConfig) -> str:
    head = "| variant | " + " | ".join(label for label, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for variant, row in table.items():
        cells = ["–" if row[label] is None else f"{row[label]['mean']:.2f} ± {row[label]['std']:.2f}"
                 for label, _ in COLUMNS]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Mean ± std over seeds {', '.join(map(str, config.seeds))}; {seconds:.0f} s. CMR: sample-100 mean "
                 "R@1/5/10; CIR: (R@10 + R@50) / 2; FIC: caption BLEU-4; FIG: text-to-image FID.")
    return "\n".join(lines)
