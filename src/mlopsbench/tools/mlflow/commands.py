"""``mlopsbench server mlflow`` and ``mlopsbench serve mlflow`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
DEFAULT_PORT = 5000
DEFAULT_SERVE_PORT = 5001


def server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(help="sqlite:///…, postgresql://… (default: runs/mlflow-server/mlflow.db)."),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(help="Artifact folder/URI (default: runs/mlflow-server/artifacts)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback only).")] = "127.0.0.1",
) -> None:
    """Run an MLflow tracking server (SQLite + artifact folder) until Ctrl-C or SIGTERM."""
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.mlflow import server as mlflow_server

    check_port(port)
    console.print(f"starting mlflow server on {host}:{port} (first start can take ~15 s)…")
    with processes.stop_on_signals():
        proc = mlflow_server.start_tracking_server(
            port, backend_store_uri, artifacts_destination, host
        )
        with processes.running(proc):
            console.print(f"MLflow UI: [bold]{proc.url}[/]  (runs: --tracking-uri {proc.url})")
            console.print(f"log: {proc.log_path} · Ctrl-C stops the server and all its workers")
            code = processes.wait_forever(proc)
    if code:
        raise typer.Exit(1)


def serve(
    model: Annotated[
        str, typer.Option("--model", "-m", help="NAME@ALIAS or NAME/VERSION (digits-cnn@champion).")
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_SERVE_PORT,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Runs folder: its mlflow/ store is the default.")
    ] = Path("runs"),
) -> None:
    """Serve a registered model over REST (POST /invocations) until Ctrl-C or SIGTERM."""
    from mlopsbench import tracking
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.mlflow import server as mlflow_server

    check_port(port)
    uri = tracking.resolve_tracking_uri(tracking_uri, out / "mlflow")
    tracking.check_tracking_uri(uri)
    version = tracking.check_registered_model(uri, model)
    model_uri = f"models:/{version.name}/{version.version}"
    console.print(f"serving {model} (= {model_uri}) on 127.0.0.1:{port}…")
    with processes.stop_on_signals():
        proc = mlflow_server.start_model_server(model_uri, port, uri, log_dir=out / "mlflow-serve")
        with processes.running(proc):
            console.print(f"POST {proc.url}/invocations · log: {proc.log_path} · Ctrl-C stops it")
            code = processes.wait_forever(proc)
    if code:
        raise typer.Exit(1)
