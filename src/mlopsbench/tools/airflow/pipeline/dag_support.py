"""What the two mlopsbench DAGs share: params from the core config, retries, schedule, the
running task's config and folder, the quality gate and the MLflow record.

The scheduler and the DAG processor import DAG files often, so only light modules load here
and Airflow itself is imported where it is used; the core's heavy parts (torch, matplotlib)
load inside the tasks.

Files of a run live in ``<artifact root>/<dag_id>/<run_id>/``: the only storage the tasks share,
so with a distributed executor it must be a volume every worker sees.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, MlopsbenchError, ServerError
from mlopsbench.usecases.common.params import ParamSpec, config_from_params, config_params

# Read by the DAG files (at parse time) and by the tasks and callbacks (at run time).
ENV_ARTIFACT_ROOT = "MLOPSBENCH_ARTIFACT_ROOT"
ENV_SCHEDULE = "MLOPSBENCH_AIRFLOW_SCHEDULE"  # a cron expression; unset -> manual runs only
ENV_RETRIES = "MLOPSBENCH_AIRFLOW_RETRIES"
ENV_RETRY_DELAY = "MLOPSBENCH_AIRFLOW_RETRY_DELAY_S"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 30.0

# A fixed start in the past: with a cron schedule and catchup=False only the latest interval runs.
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)

# Params of the DAG run that are not settings of the core config (all optional strings).
TOOL_PARAMS = {
    "run_root": "Artifact root (default $MLOPSBENCH_ARTIFACT_ROOT).",
    "mlflow_uri": "MLflow tracking URI: also log the run there.",
    "alert_webhook": "Slack-compatible webhook for alerts (stored with the run: prefer "
    "$MLOPSBENCH_ALERT_WEBHOOK or the Airflow Variable).",
}

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ------------------------------------------------------------------------------------------
# DAG-level settings
# ------------------------------------------------------------------------------------------


def dag_params(config_class: type) -> dict[str, Any]:
    """The DAG's ``params``, one per setting of the core config plus the tool params.

    Name, default, type, help and choices come from the config dataclass, so the trigger form,
    the REST API's validation and the core agree; value ranges are the config's to check.
    """
    from airflow.sdk import Param

    params = {
        spec.name: Param(spec.default, **param_schema(spec)) for spec in config_params(config_class)
    }
    for name, description in TOOL_PARAMS.items():
        params[name] = Param(None, type=["null", "string"], description=description)
    return params


def choices_param(config_class: type, setting: str, description: str) -> Any:
    """A param holding a list of a setting's choices (default: all of them), one mapped task
    instance per item: ``models`` -> ``["simple", "deep", "cnn"]`` from the config's ``model``."""
    from airflow.sdk import Param

    spec = next(s for s in config_params(config_class) if s.name == setting)
    return Param(
        list(spec.choices),
        type="array",
        items={"type": _JSON_TYPES[spec.kind], "enum": list(spec.choices)},
        minItems=1,
        uniqueItems=True,
        description=description,
    )


def param_schema(spec: ParamSpec) -> dict[str, Any]:
    """JSON schema of one setting: its type (or null when optional) and its choices."""
    kind = _JSON_TYPES[spec.kind]
    schema: dict[str, Any] = {
        "type": ["null", kind] if spec.optional else kind,
        "description": spec.description,
    }
    if spec.choices:
        schema["enum"] = [None, *spec.choices] if spec.optional else list(spec.choices)
    return schema


def schedule_from_env() -> str | None:
    """``$MLOPSBENCH_AIRFLOW_SCHEDULE`` (a cron expression such as ``0 3 * * *``), else manual."""
    return os.environ.get(ENV_SCHEDULE, "").strip() or None


def retries_from_env() -> int:
    """How often a failing task is retried (``$MLOPSBENCH_AIRFLOW_RETRIES``)."""
    return int(_env_number(ENV_RETRIES, DEFAULT_RETRIES, int))


def retry_delay_from_env() -> timedelta:
    """The pause before a retry (``$MLOPSBENCH_AIRFLOW_RETRY_DELAY_S`` seconds)."""
    return timedelta(seconds=_env_number(ENV_RETRY_DELAY, DEFAULT_RETRY_DELAY_S, float))


def _env_number(name: str, default: float, kind: type) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number >= 0, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be a number >= 0, got {raw!r}")
    return float(value)


# ------------------------------------------------------------------------------------------
# inside a task
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRun:
    """What a task knows about its DAG run: ids, params, the core config and the run folder."""

    dag_id: str
    run_id: str
    params: dict[str, Any]
    config: Any
    folder: Path


@contextmanager
def task_run(
    config_class: type, own_params: Iterable[str] = (), **settings: Any
) -> Iterator[TaskRun]:
    """The running task's DAG run, its core config read from the params and its run folder.

    ``own_params`` are the DAG's params that are no setting of the core config; ``settings``
    override the params' values (a mapped task's ``model``).

    A user error inside the block (a bad value, a missing file) fails the task without retries:
    retrying cannot help. Anything else (a crash, an OOM kill, a flaky mount, an unreachable
    MLflow server) keeps Airflow's retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield _current_run(config_class, own_params, settings)
    except ServerError:
        raise
    except MlopsbenchError as exc:
        raise AirflowFailException(str(exc)) from exc


def _current_run(
    config_class: type, own_params: Iterable[str], settings: Mapping[str, Any]
) -> TaskRun:
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = dict(context["params"])
    values = {**core_settings(params, own_params), **settings}
    config: Any = config_from_params(config_class, values)
    dag_id, run_id = context["dag"].dag_id, context["run_id"]
    folder = run_folder(artifact_root(params), dag_id, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return TaskRun(dag_id, run_id, params, config, folder)


def core_settings(params: Mapping[str, Any], own_params: Iterable[str] = ()) -> dict[str, Any]:
    """The params that are settings of the core config (the tool params left out)."""
    skip = {*TOOL_PARAMS, *own_params}
    return {name: value for name, value in params.items() if name not in skip}


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
    run: TaskRun,
    usecase: str,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> dict[str, Any]:
    """Record the run in MLflow through the shared helper; skipped without a tracking URI."""
    from airflow.sdk.exceptions import AirflowSkipException

    from mlopsbench.tracking import log_run_to_mlflow

    uri = run.params.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise AirflowSkipException(
            "no MLflow tracking URI (param mlflow_uri or $MLFLOW_TRACKING_URI)"
        )
    return log_run_to_mlflow(
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


# ------------------------------------------------------------------------------------------
# where runs keep their files
# ------------------------------------------------------------------------------------------


def artifact_root(params: Mapping[str, Any] | None = None) -> Path:
    """Param ``run_root``, else ``$MLOPSBENCH_ARTIFACT_ROOT``, else ``$AIRFLOW_HOME/mlopsbench-artifacts``."""
    explicit = (params or {}).get("run_root") or os.environ.get(ENV_ARTIFACT_ROOT)
    if explicit:
        return Path(str(explicit)).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "mlopsbench-artifacts"


def run_folder(root: str | Path, dag_id: str, run_id: str) -> Path:
    """``<root>/<dag_id>/<run_id>/``: every file one DAG run writes."""
    return Path(root) / safe_name(dag_id) / safe_name(run_id)


def safe_name(text: str) -> str:
    """A run id as a folder name (``manual__2026-01-01T00:00:00+00:00`` has ``:`` and ``+``)."""
    return _UNSAFE.sub("_", text).strip("._") or "run"
