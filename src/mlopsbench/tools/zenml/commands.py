"""``mlopsbench server zenml`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlopsbench.tools.zenml.server import DEFAULT_PORT

console = Console()


def server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    store: Annotated[
        Path | None,
        typer.Option(help="A ZenML run folder (default: the newest one under --runs)."),
    ] = None,
    runs: Annotated[Path, typer.Option(help="Where `mlopsbench run` put its runs.")] = Path("runs"),
    host: Annotated[str, typer.Option(help="Interface to bind (loopback only).")] = "127.0.0.1",
) -> None:
    """Run ZenML's local dashboard (server + UI) on a run's store until Ctrl-C or SIGTERM."""
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.zenml import server as zenml_server

    check_port(port)
    config_dir = zenml_server.find_store(store, runs)
    console.print(f"starting the ZenML dashboard on {host}:{port} for {config_dir.parent}…")
    with processes.stop_on_signals():
        proc = zenml_server.start_dashboard(config_dir, port, host)
        with processes.running(proc):
            console.print(f"ZenML dashboard: [bold]{proc.url}[/]  (runs, artifacts, models)")
            console.print(f"log: {proc.log_path} · Ctrl-C stops the server")
            code = processes.wait_forever(proc)
    if code:
        raise typer.Exit(1)
