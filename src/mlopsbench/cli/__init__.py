"""The ``mlopsbench`` command line (typer + rich), one module per command group.

Commands import their heavy machinery inside their bodies, so ``mlopsbench --help`` is instant.
Tool-specific commands (``server <tool>``, ``serve <tool>``, ``<tool> ...``) come from each tool's
declaration; nothing here names a tool.
"""

from __future__ import annotations

import os
import warnings
from typing import Annotated

import typer

from mlopsbench.cli import compare, doctor, envs, run, tools
from mlopsbench.cli.output import show_warning, state

app = typer.Typer(
    name="mlopsbench",
    help="Run the same ML pipelines on every MLOps tool, and compare the tools side by side.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    state["debug"] = debug
    if not debug:  # warnings as one line each, like errors
        warnings.showwarning = show_warning
    # Quiet, offline-friendly defaults for every tool we may start (users can override).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


app.add_typer(run.app, name="run")
compare.register(app)
tools.register(app)
doctor.register(app)
envs.register(app)
tools.register_tool_commands(app)
