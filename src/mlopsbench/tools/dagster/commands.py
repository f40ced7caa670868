"""``mlopsbench server dagster`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
DEFAULT_PORT = 3000


def server(
    port: Annotated[int, typer.Option(help="UI/GraphQL port on 127.0.0.1.")] = DEFAULT_PORT,
    home: Annotated[
        Path | None,
        typer.Option(help="DAGSTER_HOME (runs, events, files); default runs/dagster."),
    ] = None,
) -> None:
    """Dagster UI (``dagster dev``: webserver, daemon, code server) on 127.0.0.1 with the
    project's assets, until Ctrl-C, SIGTERM or SIGHUP."""
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.dagster import server as dagster_server

    check_port(port)
    home = (home or dagster_server.default_home()).resolve()
    console.print(f"starting dagster dev in {home} (first start can take ~15 s)…")
    with processes.stop_on_signals():
        proc = dagster_server.start_dev(home, port)
        try:
            console.print(
                f"Dagster UI: [bold]{proc.url}[/]  (jobs: digits_pipeline, sentiment_pipeline)"
            )
            console.print(
                f"DAGSTER_HOME {home} · runs there: mlopsbench run digits --tool dagster "
                f"(its home: <run>/dagster_home) · log: {proc.log_path}"
            )
            console.print("Ctrl-C, SIGTERM or SIGHUP stops the webserver, daemon and code server.")
            code = processes.wait_forever(proc)
        finally:
            console.print("stopping Dagster…")
            with processes.signals_ignored():
                dagster_server.stop_dev(proc)
    if code:
        raise typer.Exit(1)
