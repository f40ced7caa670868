"""``mlopsbench server mlflow`` and ``mlopsbench serve mlflow`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from mlopsbench.tools.mlflow.server import TrackingServer

console = Console()
DEFAULT_PORT = 5000
DEFAULT_SERVE_PORT = 5001


def server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    backend: Annotated[
        str,
        typer.Option(
            help="Backend store: sqlite (a file) or postgres (a private PostgreSQL under "
            "--root, its own port on 127.0.0.1)."
        ),
    ] = "sqlite",
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///…, postgresql://… of a database you run (instead of --backend)."
        ),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(help="Artifact folder/URI (default: ROOT/artifacts)."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Server folder: database, artifacts, logs (default: runs/mlflow-server)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback only).")] = "127.0.0.1",
) -> None:
    """Run an MLflow tracking server (SQLite or PostgreSQL + artifact folder) until Ctrl-C or
    SIGTERM."""
    from mlopsbench.errors import ConfigError
    from mlopsbench.support import processes
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.mlflow import server as mlflow_server

    check_port(port)
    if backend not in mlflow_server.BACKENDS:  # before anything is printed or started
        raise ConfigError(
            f"--backend must be one of {', '.join(mlflow_server.BACKENDS)}, got {backend!r}"
        )
    if backend_store_uri and backend != "sqlite":
        raise ConfigError("give --backend or --backend-store-uri, not both")
    what = "PostgreSQL + mlflow server" if backend == "postgres" else "mlflow server"
    console.print(f"starting {what} on {host}:{port} (first start can take ~15 s)…")
    with processes.stop_on_signals():
        if backend_store_uri:
            tracking = mlflow_server.TrackingServer(
                mlflow_server.start_tracking_server(
                    port, backend_store_uri, artifacts_destination, host, root
                )
            )
        else:
            tracking = mlflow_server.start_backed_tracking_server(
                port, backend, artifacts_destination, host, root
            )
        try:
            console.print(
                f"MLflow UI: [bold]{tracking.url}[/]  (runs: --tracking-uri {tracking.url})"
            )
            if tracking.postgres is not None:
                pg = tracking.postgres
                console.print(
                    f"backend store: PostgreSQL 127.0.0.1:{pg.port} (database {pg.settings.database}"
                    f", user {pg.os_user}; data {pg.settings.data_dir})"
                )
            console.print(
                f"log: {tracking.mlflow.log_path} · Ctrl-C stops the server and all its workers"
            )
            _wait(tracking)
        finally:
            with processes.signals_ignored():
                mlflow_server.stop_tracking_server(tracking)


def _wait(tracking: TrackingServer, poll_s: float = 0.5) -> None:
    """Until Ctrl-C/SIGTERM, or a one-line ServerError when the server or its database dies."""
    import time

    while True:
        tracking.check()
        time.sleep(poll_s)


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
