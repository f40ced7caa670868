"""Run one DAG on a local Airflow deployment, the way a scheduler runs it: trigger over REST.

What ``RunRequest.options["executor"]`` = ``local`` or ``celery`` does (``compare
--airflow-executor``): start the deployment of :mod:`server` in the run's folder (PostgreSQL as
the metadata DB for both, so that only the executor differs; Redis and N Celery workers for
``celery``), wait until it is ready, ``POST /auth/token`` then ``POST /api/v2/dags/{id}/dagRuns``
with the run's conf, poll the run until it ends, read it back from the metadata DB (task
instances with their hostname, queue and queued time) and stop everything.

The deployment's own start-up and shutdown are timed apart from the DAG run, so the record
shows what the executor costs per task (scheduling, queueing) next to what starting it costs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.tools.airflow import metadata, server

DEPLOYED_EXECUTORS = ("local", "celery")
READY_TIMEOUT_S = 300.0
DEFAULT_WORKERS = 2
_RECEIVED = re.compile(r"Task execute_workload\[[^\]]+\] received")


@dataclass
class DeploymentRun:
    """What one DAG run on a deployment gives back: its record and the seconds around it."""

    executor: str
    settings: server.ServerSettings
    record: metadata.DagRunRecord
    timings: dict[str, float]
    triggered_at: float  # epoch seconds: POST dagRuns sent
    finished_at: float  # epoch seconds: the run seen finished
    processes: dict[str, int] = field(default_factory=dict)  # component -> pid
    worker_logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    postgres_root: Path | None = None
    # Every task instance as the REST API lists it (mapped ones too), read before the stop.
    api_task_instances: list[dict[str, Any]] = field(default_factory=list)


def workers_option(options: Mapping[str, Any]) -> int:
    raw = options.get("workers", DEFAULT_WORKERS)
    try:
        workers = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"option workers must be a whole number, got {raw!r}") from None
    if workers < 1:
        raise ConfigError(f"option workers must be >= 1, got {workers}")
    return workers


def run_dag(
    executor: str,
    home: Path,
    artifact_root: Path,
    dag_id: str,
    conf: Mapping[str, Any],
    *,
    workers: int = DEFAULT_WORKERS,
    parallelism: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 3600.0,
) -> DeploymentRun:
    """Start the deployment, run ``dag_id`` once with ``conf`` over REST, read it back, stop.

    ``parallelism``: ``[core] parallelism``, the task instances running at once (the
    LocalExecutor's worker processes); default ``max(workers, 2)``.
    """
    from mlopsbench.support.net import free_port

    if executor not in DEPLOYED_EXECUTORS:
        raise ConfigError(
            f"executor {executor!r} is not a deployment: use one of {', '.join(DEPLOYED_EXECUTORS)}"
        )
    settings = server.ServerSettings(
        home=home,
        port=free_port(),
        artifact_root=artifact_root,
        executor=executor,
        db="postgres",
        workers=workers,
        parallelism=parallelism or max(workers, 2),
        extra_env=dict(extra_env or {}),
    )
    timings: dict[str, float] = {}
    deployment = server.start(settings)
    try:
        ready_s = server.wait_ready(deployment, READY_TIMEOUT_S, dag_ids=[dag_id])
        timings.update(
            {
                "services_start": deployment.services_s,
                "db_migrate": deployment.migrate_s,
                "airflow_ready": ready_s,
            }
        )
        client = deployment.client()
        triggered_at = time.time()
        run_id = client.trigger(dag_id, conf)
        _wait(deployment, client, dag_id, run_id, timeout_s)
        finished_at = time.time()
        t0 = time.perf_counter()
        record = metadata.read_run(home, dag_id, run_id, db_env=deployment.db_env())
        api_task_instances = client.task_instances(dag_id, run_id)
        timings["readback"] = time.perf_counter() - t0
        processes = {name: p.pid for name, p in deployment.processes.items()}
        logs = worker_logs(deployment)
    finally:
        t0 = time.perf_counter()
        server.stop(deployment)
        timings["deployment_stop"] = time.perf_counter() - t0
    return DeploymentRun(
        executor=executor,
        settings=settings,
        record=record,
        timings=timings,
        triggered_at=triggered_at,
        finished_at=finished_at,
        processes=processes,
        worker_logs=logs,
        postgres_root=deployment.postgres.settings.root if deployment.postgres else None,
        api_task_instances=api_task_instances,
    )


def _wait(
    deployment: server.AirflowServer,
    client: server.ApiClient,
    dag_id: str,
    run_id: str,
    timeout_s: float,
) -> str:
    """Poll the run until it ends; a component of the deployment that dies ends the wait with
    its own one-line error (rather than a timeout an hour later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        server.check_alive(deployment)
        try:
            state = client.dag_run(dag_id, run_id).get("state")
        except ServerError as exc:  # a busy single-worker API may time out: keep polling
            if "HTTP" in str(exc):
                raise
            state = None
        if state in server.FINISHED:
            return str(state)
        if time.monotonic() > deadline:
            raise ServerError(f"run {run_id} of {dag_id} still {state} after {timeout_s:.0f} s")
        time.sleep(0.5)


def worker_logs(deployment: server.AirflowServer) -> dict[str, dict[str, Any]]:
    """Per Celery worker: its log file and how many task messages it received."""
    found = {}
    for name, worker in deployment.workers.items():
        try:
            text = worker.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        found[name] = {"log": str(worker.log_path), "received": len(_RECEIVED.findall(text))}
    return found
