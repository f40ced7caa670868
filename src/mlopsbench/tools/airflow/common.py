"""What the adapter, the worker, the read-back and the server share, without importing Airflow.

Airflow reads its configuration (home, database, DAGs folder) once, at import: every process that
imports it gets :func:`airflow_env` first, which is why runs, read-backs and servers are child
processes (:func:`run_worker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError
from mlopsbench.support.logs import log_reason
from mlopsbench.tools.airflow.pipeline.alerts import ENV_ALERT_LOG
from mlopsbench.tools.airflow.pipeline.dag_support import ENV_ARTIFACT_ROOT
from mlopsbench.usecases.registry import all_usecases

# The DAG files (and their helpers, which .airflowignore keeps from being parsed as DAGs).
DAGS_FOLDER = Path(__file__).resolve().parent / "pipeline"
WORKER_MODULE = "mlopsbench.tools.airflow.worker"
# User errors the worker reports by name, raised again as themselves in the parent.
_WORKER_ERRORS: dict[str, type[MlopsbenchError]] = {
    "ConfigError": ConfigError,
    "DataError": DataError,
}


def dag_id(usecase: str) -> str:
    """The DAG of a use case, by convention: ``pipeline/mlopsbench_<usecase>.py`` declares it."""
    return f"mlopsbench_{usecase}"


def all_dag_ids() -> tuple[str, ...]:
    return tuple(dag_id(usecase.name) for usecase in all_usecases())


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
    args: Sequence[str],
    env: Mapping[str, str],
    result_path: Path,
    log_path: Path,
    timeout_s: float,
) -> dict[str, Any]:
    """Run ``python -m mlopsbench.tools.airflow.worker ARGS --result RESULT`` and return its JSON.

    A user error the worker reports is raised again as itself, in one line; a worker that died
    without a result (or ran past ``timeout_s``) is an MlopsbenchError pointing at its log.
    ``spawned_at`` and ``exited_at`` (epoch seconds) are added, so that the caller can tell the
    interpreter's start-up and exit from the worker's own ``started_at`` / ``finished_at``.
    """
    result_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", WORKER_MODULE, *args, "--result", str(result_path)]
    spawned_at = time.time()
    with open(log_path, "wb") as log_file:
        try:
            done = subprocess.run(
                command, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise MlopsbenchError(
                f"Airflow worker `{' '.join(args[:1])}` did not finish within {timeout_s:.0f} s "
                f"(log: {log_path})"
            ) from None
    exited_at = time.time()
    try:
        payload = json.loads(result_path.read_text())
    except (OSError, ValueError):
        reason = log_reason(log_path) or "no output"
        raise MlopsbenchError(
            f"Airflow worker exited with code {done.returncode} without a result "
            f"({reason}; log: {log_path})"
        ) from None
    if "error" in payload:
        error_class = _WORKER_ERRORS.get(str(payload.get("error_type")), MlopsbenchError)
        raise error_class(str(payload["error"]).splitlines()[0])
    return {**payload, "spawned_at": spawned_at, "exited_at": exited_at}
