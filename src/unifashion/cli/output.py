"""What the commands print: JSON on stdout, messages and progress bars on stderr, each message one line."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err = Console(stderr=True)


def one_line(message: str) -> str:
    """A message as one line: a line break inside it (from a file name or a quoted value) shown as \\n."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def print_line(text: str) -> None:
    """One result line on stdout, printed as is (no markup, no highlighting, no wrapping)."""
    Console().print(escape(text), highlight=False, soft_wrap=True)


def report_skipped(skipped: list[dict]) -> None:
    """Each skipped item and why, one line each on stderr (--skip-bad)."""
    for s in skipped:
        err.print(f"skipped {escape(one_line(s['item']))}: {escape(one_line(s['reason']))}", highlight=False,
                  soft_wrap=True)


def progress_shown(json_on_stdout: bool) -> bool:
    """Progress bars go to stderr, unless stdout is JSON for a program and stderr is no terminal either."""
    return not json_on_stdout or err.is_terminal


class StageProgress:
    """A rich progress bar per stage, on stderr (see `progress_shown`)."""

    def __init__(self, json_on_stdout: bool) -> None:
        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                                 disable=not progress_shown(json_on_stdout))
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "StageProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done)
