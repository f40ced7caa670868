"""What the adapter, the worker, the read-back and the server share, without importing Airflow.

Airflow reads its configuration (home, database, DAGs folder) once, at import: every process that
imports it gets :func:`airflow_env` first, which is why runs, read-backs and servers are child
processes (:func:`run_worker`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.support import workers
from mlopsbench.tools.airflow.pipeline.alerts import ENV_ALERT_LOG
from mlopsbench.tools.airflow.pipeline.dag_support import ENV_ARTIFACT_ROOT
from mlopsbench.usecases.registry import all_usecases

# The DAG files (and their helpers, which .airflowignore keeps from being parsed as DAGs).
DAGS_FOLDER = Path(__file__).resolve().parent / "pipeline"
WORKER_MODULE = "mlopsbench.tools.airflow.worker"


def dag_id(usecase: str) -> str:
    """The DAG of a use case, by convention: ``pipeline/mlopsbench_<usecase>.py`` declares it."""
    return f"mlopsbench_{usecase}"


def all_dag_ids() -> tuple[str, ...]:
    """One DAG per use case (what ``run --tool airflow`` and ``compare`` run)."""
    return tuple(dag_id(usecase.name) for usecase in all_usecases())


# DAG files that are no use case's pipeline: the digits models trained side by side.
MODELS_DAG_ID = "mlopsbench_digits_models"
# The sweep scenario (``get_usecase("sweep")``; all_usecases() holds the paper's two only).
SWEEP_DAG_ID = dag_id("sweep")


def served_dag_ids() -> tuple[str, ...]:
    """Every DAG of the DAGs folder: what a server waits for before it says it is ready."""
    return (*all_dag_ids(), MODELS_DAG_ID, SWEEP_DAG_ID)


# Set in a Celery worker's environment: its name, which its task instances record as hostname.
ENV_WORKER_NAME = "MLOPSBENCH_AIRFLOW_WORKER"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the Celery workers: ``<worker>@<host>``.

    Airflow records the host a task ran on; several workers on one machine would all record
    the same name, so each one prefixes its own (``celery-1@myhost``).
    """
    import socket

    host = socket.getfqdn()
    name = os.environ.get(ENV_WORKER_NAME, "").strip()
    return f"{name}@{host}" if name else host


def sqlite_url(db_path: str | Path) -> str:
    return f"sqlite:///{Path(db_path).resolve()}"


def airflow_env(
    home: str | Path,
    *,
    artifact_root: str | Path | None = None,
    dags_folder: str | Path = DAGS_FOLDER,
    alerts_log: str | Path | None = None,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for an Airflow process confined to ``home`` (SQLite DB, our DAGs only)."""
    home = Path(home).resolve()
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_url(home / "airflow.db"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # Keep tasks off the network and quiet (HF hub, MLflow telemetry).
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
        }
    )
    if artifact_root is not None:
        env[ENV_ARTIFACT_ROOT] = str(Path(artifact_root).resolve())
    if alerts_log is not None:
        env[ENV_ALERT_LOG] = str(Path(alerts_log).resolve())
    env.update(extra or {})
    return env


def run_worker(
    command: str,
    request: Mapping[str, Any] | None,
    env: Mapping[str, str],
    folder: Path,
    log_path: Path,
    timeout_s: float,
) -> dict[str, Any]:
    """``python -m mlopsbench.tools.airflow.worker COMMAND`` on ``request``; its JSON result.

    The shared worker protocol (:func:`mlopsbench.support.workers.run_worker`): request and
    result files in ``folder``, the child in its own process group, a user error it reports
    raised again as itself in one line, a worker that died without a result (or ran past
    ``timeout_s``) an MlopsbenchError pointing at its log; ``spawned_at`` / ``exited_at`` added.
    """
    return workers.run_worker(
        WORKER_MODULE, command, request, what="Airflow worker", folder=folder, env=env,
        log_path=log_path, timeout_s=timeout_s,
    )  # fmt: skip
