"""``mlopsbench server prefect`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
DEFAULT_PORT = 4200  # Prefect's own default


def server(
    port: Annotated[int, typer.Option(help="API/UI port on 127.0.0.1.")] = DEFAULT_PORT,
    home: Annotated[
        Path | None,
        typer.Option(help="PREFECT_HOME (SQLite database, log); default runs/prefect-server."),
    ] = None,
) -> None:
    """Run a Prefect server (API + UI, SQLite) on 127.0.0.1 until Ctrl-C, SIGTERM or SIGHUP."""
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.prefect import server as prefect_server

    check_port(port)
    home = (home or prefect_server.default_home()).resolve()
    console.print(f"starting prefect server in {home} (a new database takes ~15 s)…")
    with processes.stop_on_signals():
        proc = prefect_server.start_server(port, home)
        with processes.running(proc):
            api = prefect_server.api_url(proc)
            console.print(f"Prefect UI: [bold]{proc.url}[/]")
            console.print(
                f"runs:       PREFECT_API_URL={api} mlopsbench run digits --tool prefect",
                soft_wrap=True,
            )
            console.print(f"log: {proc.log_path} · Ctrl-C stops the server and all it started")
            code = processes.wait_forever(proc)
    if code:
        raise typer.Exit(1)
