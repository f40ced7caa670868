"""The steps both pipelines end with: the quality gate and the MLflow record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, step
from zenml.config.retry_config import StepRetryConfig
from zenml.enums import ModelStages

from mlopsbench.tools.zenml.pipeline.pipeline_helpers import relocated, step_dir


@step(enable_cache=False)  # a cached gate would leave a new model version unpromoted
def promote_if_accurate(evaluation: dict[str, Any]) -> Annotated[dict[str, Any], "quality_gate"]:
    """The quality gate: this run's model version becomes the production one only when the
    model reached the threshold (the previous production version is archived); below it, the
    version stays unpromoted and the run still succeeds, its verdict kept as this step's output.
    """
    gate: dict[str, Any] = evaluation["gate"]
    if gate["passed"]:
        get_step_context().model.set_stage(ModelStages.PRODUCTION, force=True)
    return gate


@step(enable_cache=False, retry=StepRetryConfig(max_retries=2))  # a server may blink
def log_to_mlflow(
    mlflow_uri: str,
    usecase: str,
    params: dict[str, Any],
    dataset: Path,
    data_info: dict[str, Any],
    model: Path,
    model_info: dict[str, Any],
    evaluation: dict[str, Any],
    evaluation_files: Path,
) -> Annotated[dict[str, Any], "mlflow"]:
    """Record the run in MLflow through the shared helper: params, metrics per epoch, the
    evaluation files and plots, the model and the dataset, tagged with ZenML's run."""
    from mlopsbench.tracking import log_run_to_mlflow

    context = get_step_context()
    return log_run_to_mlflow(
        mlflow_uri,
        tool="zenml",
        usecase=usecase,
        run_name=context.pipeline_run.name,
        params=params,
        metrics=evaluation["metrics"],
        history=model_info.get("history") or [],
        artifacts=relocated(evaluation["artifacts"], evaluation_files),
        model_dir=str(model),
        dataset={**data_info, **relocated({"data_path": data_info["data_path"]}, dataset)},
        tags={
            "zenml.pipeline_run": context.pipeline_run.name,
            "zenml.model_version": f"{context.model.name}/{context.model.number}",
            "mlopsbench.gate_passed": evaluation["gate"]["passed"],
        },
        store_root=step_dir() / "mlflow",
    )
