"""The benchmark results as Markdown: per topic, the command, when and where it ran, its table and
its targets (met or not). BENCHMARKS.md's figures are pasted from this output.

    python benchmarks/summary.py [--quick] [--results bench-results]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RESULTS, table_layout

TOPICS = ("encoding", "training", "search", "search_backends", "generation", "serving", "captioning")


def _cell(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_cell(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def topic_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"### {result['topic']}", "",
             f"`{result['command']}` — {result['seconds']} s on {m['cores']} cores ({m['cpu']}), torch "
             f"{m['torch']}{', faiss ' + m['faiss'] if 'faiss' in m else ''}", ""]
    if result["setup"]:
        lines += ["Setup: " + ", ".join(f"{k} {_cell(v)}" for k, v in result["setup"].items()), ""]
    if result["rows"]:
        header, body = table_layout(result["rows"])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(v) for v in line) + " |" for line in body]
        lines.append("")
    for t in result["targets"]:
        sign = ">=" if t["higher_is_better"] else "<="
        lines.append(f"- {t['name']}: **{_cell(t['measured'])}{t['unit']}** (target {sign} {t['target']:g}{t['unit']}): "
                     f"{'met' if t['met'] else '**not met**'}")
    for n in result["notes"]:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="summarise the --quick results")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("files", nargs="*", type=Path, help="result files (default: every topic's in --results)")
    args = p.parse_args()
    paths = args.files or [args.results / f"{topic}{'-quick' if args.quick else ''}.json" for topic in TOPICS]
    found = False
    for path in paths:
        if path.is_file():
            found = True
            print(topic_markdown(json.loads(path.read_text())))
    if not found:
        raise SystemExit(f"error: no results in {args.results} (run make bench first)")


if __name__ == "__main__":
    main()
