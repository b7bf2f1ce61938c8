"""Reports people can read: a page written twice, as Markdown and as HTML, with its pictures beside it.

The parts every report shares (tables, figures, the HTML page, writing report.md and report.html) are
here; so is the evaluation report (`unifashion eval --report`) with its matplotlib plots: recall@K curves
(cross-modal retrieval in both directions over the full gallery, composed retrieval per category),
per-category composed-retrieval bars with the caption variants, captions under their images beside the
references, and generated images beside the real ones. The quickstart's report
(recipes/quickstart_report.py) is built from the same parts.
Stages of the evaluation report: 1. plots  2. Markdown  3. HTML. Everything is written under OUT
(report.md, report.html, plots/).
"""
from __future__ import annotations

import html
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from unifashion.storage import write_text_atomic
from unifashion.evaluation.evaluate import EvalDetails


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> bool:
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return True


def recall_curves(details: EvalDetails, path: Path) -> bool:
    curves = details.curves
    cmr = {k: v for k, v in curves.items() if k.startswith("cmr.")}
    cir = {k: v for k, v in curves.items() if k.startswith("cir.")}
    panels = [(title, c) for title, c in (("Cross-modal retrieval (full gallery)", cmr),
                                          ("Composed retrieval (Fashion-IQ protocol)", cir)) if c]
    if not panels:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, group) in zip(axes[0], panels):
        for name, curve in sorted(group.items()):
            ks = sorted(curve)
            ax.plot(ks, [curve[k] for k in ks], label=name.split(".", 1)[1].replace("full.", ""))
        ax.set(title=title, xlabel="K", ylabel="recall@K (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def category_bars(metrics: dict, path: Path) -> bool:
    categories = sorted({k.split(".")[1] for k in metrics if k.startswith("cir.") and k.endswith(".r10")
                         and k.count(".") == 2} - {"avg"})
    if not categories:
        return False
    plt = _pyplot()
    variants = [(v, metrics[f"cir.variants.{v}.avg.score"]) for v in ("img", "cap", "both")
                if f"cir.variants.{v}.avg.score" in metrics]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    names = categories + ["avg"]
    x = np.arange(len(names))
    for offset, k in ((-0.2, "r10"), (0.2, "r50")):
        axes[0].bar(x + offset, [metrics[f"cir.{c}.{k}"] for c in names], width=0.4, label=f"R@{k[1:]}")
    axes[0].set(xticks=x, xticklabels=names, ylabel="%", ylim=(0, 100), title="Composed retrieval per category")
    axes[0].legend()
    axes[1].bar([v for v, _ in variants], [s for _, s in variants], color="tab:green")
    axes[1].set(ylim=(0, 100), title="(R@10 + R@50) / 2 by score")
    fig.tight_layout()
    return _save(fig, path)


def caption_examples(details: EvalDetails, path: Path) -> bool:
    if not details.captions:
        return False
    plt = _pyplot()
    n = len(details.captions)
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n, 4.2), squeeze=False)
    for ax, ex in zip(axes[0], details.captions):
        ax.imshow(np.asarray(ex["image"].load().convert("RGB")))
        ax.set_axis_off()
        text = "model: " + "\n".join(textwrap.wrap(ex["prediction"], 28)[:4]) + "\n\ntruth: " + \
            "\n".join(textwrap.wrap(ex["reference"], 28)[:4])
        ax.text(0, -0.05, text, transform=ax.transAxes, va="top", fontsize=7)
    fig.subplots_adjust(bottom=0.45, wspace=0.1)
    return _save(fig, path)


def generation_grid(details: EvalDetails, path: Path) -> bool:
    if not details.generations:
        return False
    plt = _pyplot()
    n = len(details.generations)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i, ex in enumerate(details.generations):
        axes[0][i].imshow(np.asarray(ex["real"].load().convert("RGB")))
        axes[1][i].imshow(np.asarray(ex["generated"].convert("RGB")), interpolation="nearest")
        for row in (0, 1):
            axes[row][i].set_axis_off()
    axes[0][0].set_title("real", loc="left", fontsize=9)
    axes[1][0].set_title("generated from its description", loc="left", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table's lines: the header, its rule and one line per row, the cells as given."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(row) + " |" for row in rows]


def html_table(rows: Iterable[Sequence[str]], header: Sequence[str] = ()) -> str:
    """The same table as HTML, every cell escaped; without a header it is rows only."""
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def figure_markdown(title: str, name: str, src: str) -> list[str]:
    """A picture under its own heading, as Markdown lines."""
    return [f"## {title}", "", f"![{name}]({src})"]


def figure_html(title: str, src: str) -> str:
    return f"<h2>{html.escape(title)}</h2><img src='{src}'>"


def html_page(title: str, style: str, body: str) -> str:
    """A standalone HTML page: UTF-8, its style inline, nothing fetched but its own pictures."""
    return f"<!doctype html><meta charset='utf-8'><title>{title}</title><style>{style}</style>{body}"


def write_pages(out: Path, markdown: Sequence[str], page: str) -> Path:
    """OUT/report.md (the lines) and OUT/report.html, each written atomically; returns the Markdown path."""
    write_text_atomic(out / "report.md", "\n".join(markdown) + "\n")
    write_text_atomic(out / "report.html", page)
    return out / "report.md"


def write_eval_report(out: Path, metrics: dict, meta: dict, details: EvalDetails) -> Path:
    """OUT/report.md and OUT/report.html with the plots in OUT/plots; returns the Markdown path."""
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    # 1. plots (each only when its data was measured)
    drawn = {name: fn(plots / f"{name}.png") for name, fn in (
        ("recall_curves", lambda p: recall_curves(details, p)), ("cir_categories", lambda p: category_bars(metrics, p)),
        ("captions", lambda p: caption_examples(details, p)), ("generations", lambda p: generation_grid(details, p)))}
    titles = {"recall_curves": "Recall@K", "cir_categories": "Composed retrieval by category",
              "captions": "Captions (model and truth)", "generations": "Generated beside real"}
    shown = [name for name, ok in drawn.items() if ok]
    data = ", ".join(f"{k}: {v}" for k, v in meta.get("data", {}).items())
    values = [(k, f"{metrics[k]:.2f}") for k in sorted(metrics)]
    # 2. Markdown
    md = ["# UniFashion evaluation", "", f"Model `{meta.get('model')}`; data {data}; {meta.get('time')}; "
          f"{meta.get('seconds')} s.", "", *markdown_table(("metric", "value"), values)]
    for name in shown:
        md += ["", *figure_markdown(titles[name], name, f"plots/{name}.png")]
    if details.captions:
        md += ["", *markdown_table(("model caption", "reference"),
                                   ((c["prediction"], c["reference"]) for c in details.captions))]
    # 3. HTML
    esc = html.escape
    figures = "".join(figure_html(titles[n], f"plots/{n}.png") for n in shown)
    return write_pages(out, md, html_page(
        "UniFashion evaluation", "body{font-family:sans-serif;max-width:1150px;margin:2em auto}td{padding:2px 8px}",
        f"<h1>UniFashion evaluation</h1><p>Model <code>{esc(str(meta.get('model')))}</code>; data {esc(data)}; "
        f"{esc(str(meta.get('time')))}</p>{html_table(values)}{figures}"))
