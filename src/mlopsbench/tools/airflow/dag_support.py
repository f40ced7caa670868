"""Building blocks of the mlopsbench DAGs: params, default_args, task context, stage timing.

The DAG files stay declarative (which tasks, in which order); what each task does around its
one core call lives here: reading the run's params into the core config, the run folder, timing
the core call, turning user errors into failures without retries, the quality gate and MLflow
logging. Only light imports at module level: the scheduler re-parses DAG files often, and the
core (torch, matplotlib) is imported inside the tasks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, MlopsbenchError, ServerError
from mlopsbench.tools.airflow import alerts
from mlopsbench.tools.airflow.common import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY_S,
    ENV_RETRIES,
    ENV_RETRY_DELAY,
    ENV_SCHEDULE,
    artifact_root,
    config_from_params,
    param_specs,
    run_folder,
)

# A fixed start in the past: with a cron schedule and catchup=False only the latest interval runs.
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# DAG-level settings
# ------------------------------------------------------------------------------------------


def dag_kwargs(usecase: str) -> dict[str, Any]:
    """Keyword arguments shared by both ``@dag`` declarations."""
    return {
        "schedule": schedule_from_env(),
        "start_date": START_DATE,
        "catchup": False,
        "params": dag_params(usecase),
        "default_args": default_args(),
        "on_success_callback": alerts.on_dag_success,
        "on_failure_callback": alerts.on_dag_failure,
        "tags": ["mlopsbench", usecase],
    }


def schedule_from_env() -> str | None:
    """``$MLOPSBENCH_AIRFLOW_SCHEDULE`` (a cron expression such as ``0 3 * * *``), else manual."""
    value = os.environ.get(ENV_SCHEDULE, "").strip()
    return value or None


def default_args() -> dict[str, Any]:
    """Retries with a delay for every task, and the failure alert once no retry is left."""
    return {
        "owner": "mlopsbench",
        "retries": _env_number(ENV_RETRIES, DEFAULT_RETRIES, int),
        "retry_delay": timedelta(
            seconds=_env_number(ENV_RETRY_DELAY, DEFAULT_RETRY_DELAY_S, float)
        ),
        "on_failure_callback": alerts.on_task_failure,
    }


def _env_number(name: str, default: Any, kind: type) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number >= 0, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be a number >= 0, got {raw!r}")
    return value


def dag_params(usecase: str) -> dict[str, Any]:
    """The DAG's ``params``: typed, validated (JSON schema) and shown in the trigger form."""
    from airflow.sdk import Param

    return {
        name: Param(default, description=description, **schema)
        for name, (default, schema, description) in param_specs(usecase).items()
    }


# ------------------------------------------------------------------------------------------
# inside a task
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRun:
    """What a task knows about its DAG run: ids, params, the core config and the run folder."""

    usecase: str
    dag_id: str
    run_id: str
    params: dict[str, Any]
    config: Any
    folder: Path


def current_run(usecase: str) -> TaskRun:
    """The running task's DAG run (from Airflow's context); creates the run folder."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = dict(context["params"])
    with user_errors():
        config = config_from_params(usecase, params)
    dag_id = context["dag"].dag_id
    folder = run_folder(artifact_root(params), dag_id, context["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    return TaskRun(usecase, dag_id, context["run_id"], params, config, folder)


@contextmanager
def user_errors() -> Iterator[None]:
    """Fail a task without retries on user errors (bad path, bad value): retrying cannot help.

    Anything else (a crash, an OOM kill, a flaky mount, an unreachable MLflow server) keeps
    Airflow's retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except ServerError:
        raise
    except MlopsbenchError as exc:
        raise AirflowFailException(str(exc)) from exc


@dataclass
class Stopwatch:
    started_at: float = 0.0  # epoch seconds, to place the core call inside the task instance
    seconds: float = 0.0

    def as_xcom(self) -> dict[str, float]:
        return {"started_at": self.started_at, "seconds": self.seconds}


@contextmanager
def core_stage() -> Iterator[Stopwatch]:
    """Time the one core call of a task (its XCom carries ``seconds`` and ``started_at``)."""
    watch = Stopwatch(started_at=time.time())
    started = time.perf_counter()
    try:
        with user_errors():
            yield watch
    finally:
        watch.seconds = time.perf_counter() - started


def quality_gate(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """Fail the task (no retry; the failure alert fires) when the model is below its gate."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlopsbench.usecases.common.gate import check_gate

    gate = evaluation["gate"]
    result = check_gate(gate["value"], gate["threshold"], gate.get("metric", "accuracy"))
    if not result.passed:
        raise AirflowFailException(result.message)
    return result.to_dict()


def log_to_mlflow(
    usecase: str,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> dict[str, Any]:
    """Record the run in MLflow through the shared helper; skipped without a tracking URI.

    Runs next to the gate rather than after it, so runs that fail the gate are tracked too.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    run = current_run(usecase)
    uri = run.params.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise AirflowSkipException(
            "no MLflow tracking URI (param mlflow_uri or $MLFLOW_TRACKING_URI)"
        )
    from mlopsbench.tracking import log_run_to_mlflow

    with core_stage() as watch:
        logged = log_run_to_mlflow(
            uri,
            tool="airflow",
            usecase=usecase,
            run_name=f"{run.dag_id}/{run.run_id}",
            params=run.config.to_dict(),
            metrics=evaluation["metrics"],
            history=model.get("history") or [],
            artifacts=evaluation.get("artifacts") or {},
            model_dir=model["model_dir"],
            dataset=dict(data),
            tags={
                "airflow.dag_id": run.dag_id,
                "airflow.run_id": run.run_id,
                "mlopsbench.gate_passed": evaluation["gate"]["passed"],
            },
            store_root=run.folder / "mlflow",
        )
    return {**logged, **watch.as_xcom()}
