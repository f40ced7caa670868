"""``mlopsbench doctor``: is this machine ready, and what to do where it is not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlopsbench.cli.output import console, friendly_errors


def register(app: typer.Typer) -> None:
    app.command("doctor")(friendly_errors(doctor))


def doctor(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for run outputs (checked writable).")
    ] = Path("runs"),
    lock: Annotated[
        Path | None,
        typer.Option(help="Lock file to compare versions with (default: this checkout's)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the checks as JSON instead of a table.")
    ] = False,
) -> None:
    """Check this machine: Python, tool versions vs the lock file, torch CPU/GPU, ports, offline data.

    Exits 0 when nothing blocks `mlopsbench run digits`, 1 otherwise; every problem says what to do.
    """
    import json

    from mlopsbench.bench.doctor import DoctorConfig, exit_code, render, run_checks, to_json

    checks = run_checks(DoctorConfig(lock_path=lock, runs_dir=out))
    if as_json:
        typer.echo(json.dumps(to_json(checks), indent=2))
    else:
        render(checks, console)
    raise typer.Exit(exit_code(checks))
