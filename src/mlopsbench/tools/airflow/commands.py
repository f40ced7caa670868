"""``mlopsbench server airflow`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
DEFAULT_PORT = 8080


def server(
    port: Annotated[int, typer.Option(help="API/UI port on 127.0.0.1.")] = DEFAULT_PORT,
    home: Annotated[
        Path | None, typer.Option(help="AIRFLOW_HOME (SQLite DB, logs); default runs/airflow.")
    ] = None,
    artifact_root: Annotated[
        Path | None, typer.Option(help="Where DAG runs write files; default HOME/artifacts.")
    ] = None,
    parallelism: Annotated[int, typer.Option(min=1, help="Task slots of the LocalExecutor.")] = 2,
) -> None:
    """Airflow 3 api-server, scheduler and dag-processor on 127.0.0.1 with the project's DAGs."""
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.airflow import server as airflow_server
    from mlopsbench.tools.airflow.common import all_dag_ids

    check_port(port)
    settings = airflow_server.ServerSettings(
        home=(home or airflow_server.default_home()).resolve(),
        port=port,
        artifact_root=artifact_root.resolve() if artifact_root else None,
        parallelism=parallelism,
    )
    console.print(f"starting Airflow in {settings.home} (db migrate, then 3 processes)…")
    server = airflow_server.start(settings)
    try:
        ready_s = airflow_server.wait_ready(server)
        console.print(
            f"[green]Airflow ready[/] in {ready_s:.0f} s (db migrate {server.migrate_s:.0f} s)"
        )
        console.print(f"  UI/API    {server.url}   login: admin / {server.password}")
        console.print(f"  DAGs      {', '.join(all_dag_ids())}")
        console.print(f"  artifacts {settings.artifacts}")
        console.print(f"  logs      {server.log_dir}")
        console.print("Ctrl-C or SIGTERM stops all processes.")
        airflow_server.wait_until_exit(server)
    finally:
        console.print("stopping Airflow…")
        airflow_server.stop(server)
