"""The `unifashion` command line: the only place that parses arguments.

Every command has --help, prints one clear line and exits non-zero on failure, and prints JSON on
stdout with --json (progress and messages go to stderr, so stdout stays machine-readable). Each
module here is one group of commands: parse, call the library, print (output.py).
"""
from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from unifashion.cli import data, evaluate, index, model, recipes, search, serve, train, tryon
from unifashion.cli.output import err, one_line
from unifashion.errors import UnifashionError

app = typer.Typer(
    help="UniFashion: one fashion vision-language model for retrieval, composed retrieval, captioning and generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# `unifashion --help` lists the commands in this order, then the groups
app.command()(data.synth)
app.command()(train.train)
app.command()(evaluate.captions)
app.command("eval")(evaluate.eval_)
app.command()(recipes.ablate)
app.command()(recipes.quickstart)
app.command()(search.search)
app.command()(model.caption)
app.command()(model.generate)
app.command()(model.classify)
app.command()(tryon.tryon)
app.command()(serve.serve)
app.add_typer(data.data_app, name="data")
app.add_typer(model.model_app, name="model")
app.add_typer(index.index_app, name="index")


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
        err.print(f"[red]error:[/red] {escape(one_line(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug: one line, the traceback only on request
        if os.environ.get("UNIFASHION_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(one_line(str(e)))} "
                  "(set UNIFASHION_DEBUG=1 for a traceback)", highlight=False, soft_wrap=True)
        sys.exit(2)
