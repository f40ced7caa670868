"""What both flows share: the run's folder, the quality gate, MLflow logging and promotion.

Tasks are plain Python functions to Prefect, so the gate, the MLflow record and the
promotion are written once here and called by each flow like its own tasks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.common.gate import enforce_gate


def run_folder(work_dir: str) -> Path:
    """``<work_dir>/<flow run id>/``: every file this flow run's tasks write."""
    folder = Path(work_dir).expanduser().resolve() / str(flow_run.id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mlflow_tracking_uri(parameter: str | None) -> str:
    """The flow's ``mlflow_uri`` parameter, else ``$MLFLOW_TRACKING_URI``; empty: no MLflow."""
    return (parameter or os.environ.get("MLFLOW_TRACKING_URI", "")).strip()


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless its input was wrong: another try cannot fix a bad value or a
    missing file, while a crash, a full disk or a flaky mount may pass next time."""
    try:
        state.result()
    except (ConfigError, DataError):
        return False
    except Exception:
        return True
    return True


@task
def quality_gate(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """Fail (and so fail the flow run) when the model is below its quality gate."""
    gate = evaluation["gate"]
    return enforce_gate(gate["value"], gate["threshold"], gate["metric"]).to_dict()


@task
def promote_model(model: Mapping[str, Any], key: str) -> UUID:
    """Publish a model that passed the gate as the newest version of the keyed link artifact:
    the Artifacts page then lists, per key, every model promoted so far."""
    return create_link_artifact(
        link=Path(model["model_dir"]).resolve().as_uri(),
        link_text=f"{model['model_name']} (flow run {flow_run.name})",
        key=key,
        description="Passed the quality gate",
    )


@task(retries=2, retry_delay_seconds=5)  # a tracking server can be briefly unreachable
def log_to_mlflow(
    uri: str,
    usecase: str,
    config: Any,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    folder: Path,
) -> dict[str, Any]:
    """Record the run in MLflow too (params, metrics, plots, model, dataset), gate or not."""
    from mlopsbench.tracking import log_stages_to_mlflow

    return log_stages_to_mlflow(
        uri,
        tool="prefect",
        usecase=usecase,
        run_name=f"{flow_run.flow_name}/{flow_run.name}",
        config=config,
        data=data,
        model=model,
        evaluation=evaluation,
        tags={"prefect.flow_run_id": flow_run.id},
        store_root=folder / "mlflow",
    )
