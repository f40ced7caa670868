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
        Path | None,
        typer.Option(help="AIRFLOW_HOME (database, logs, PostgreSQL/Redis); default runs/airflow."),
    ] = None,
    artifact_root: Annotated[
        Path | None, typer.Option(help="Where DAG runs write files; default HOME/artifacts.")
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="local: the scheduler forks each task; celery: N Celery workers, Redis broker, "
            "PostgreSQL."
        ),
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Celery workers (--executor celery).")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks at once per Celery worker.")] = 1,
    db: Annotated[
        str | None,
        typer.Option(
            help="Metadata database: sqlite or postgres (a private PostgreSQL under HOME); "
            "default sqlite, postgres with --executor celery."
        ),
    ] = None,
    parallelism: Annotated[int, typer.Option(min=1, help="Task slots of the LocalExecutor.")] = 2,
) -> None:
    """Airflow 3 on 127.0.0.1 with the project's DAGs: api-server, scheduler, dag-processor,
    and with --executor celery PostgreSQL, Redis and N Celery workers."""
    from mlopsbench.support.net import check_port
    from mlopsbench.tools.airflow import server as airflow_server
    from mlopsbench.tools.airflow.common import served_dag_ids

    check_port(port)
    settings = airflow_server.ServerSettings(
        home=(home or airflow_server.default_home()).resolve(),
        port=port,
        artifact_root=artifact_root.resolve() if artifact_root else None,
        parallelism=parallelism,
        executor=executor,
        db=db,
        workers=workers,
        worker_concurrency=concurrency,
    )
    parts = len(airflow_server.commands(settings))
    parts += (settings.database == "postgres") + settings.celery  # PostgreSQL, Redis
    console.print(
        f"starting Airflow ({settings.describe()}) in {settings.home}: {parts} processes…"
    )
    server = airflow_server.start(settings)
    try:
        ready_s = airflow_server.wait_ready(server)
        total_s = ready_s + server.started_at - server.launched_at
        console.print(
            f"[green]Airflow ready[/] in {total_s:.0f} s (services {server.services_s:.0f} s, "
            f"db migrate {server.migrate_s:.0f} s, Airflow processes {ready_s:.0f} s)"
        )
        console.print(f"  UI/API    {server.url}   login: admin / {server.password}")
        console.print(f"  executor  {settings.describe()}")
        if server.postgres is not None:
            console.print(
                f"  database  PostgreSQL 127.0.0.1:{server.postgres.port} (user "
                f"{server.postgres.os_user}; data {server.postgres.settings.data_dir})"
            )
        if server.redis is not None:
            console.print(f"  broker    Redis 127.0.0.1:{server.redis.port}")
        if server.workers:
            console.print(f"  workers   {', '.join(server.workers)} (queue default)")
        console.print(f"  DAGs      {', '.join(served_dag_ids())}")
        console.print(f"  artifacts {settings.artifacts}")
        console.print(f"  logs      {server.log_dir}")
        console.print("Ctrl-C or SIGTERM stops all processes.")
        airflow_server.wait_until_exit(server, on_worker_lost=_worker_lost)
    finally:
        console.print("stopping Airflow…")
        airflow_server.stop(server)


def _worker_lost(name: str, how: str) -> None:
    Console(stderr=True).print(
        f"[yellow]warning:[/] Celery worker {name} {how}: a task it ran is retried on another "
        "worker once its heartbeat times out",
        highlight=False,
        soft_wrap=True,
    )
