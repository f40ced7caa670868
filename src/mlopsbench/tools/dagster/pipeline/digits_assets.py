"""Digits (the paper's MNIST classifier) as Dagster software-defined assets.

``digits_data -> digits_model -> digits_evaluation -> digits_champion``, with the blocking asset
check ``digits_quality_gate`` on the evaluation and ``digits_mlflow_run`` (materialised only when
the ``mlflow`` resource has a tracking URI). Each asset is one call into the core
(``mlopsbench.usecases.digits.stages``): what the stage returned is the asset's value (stored by
the IO manager and handed to the next asset) and its metadata (metrics, the stage's seconds,
plots), which the UI shows and the instance's event log keeps. The data's digest is its data
version, so every later materialisation records which data it was built from.

Materialise the job from the UI's launchpad or in Python::

    defs.resolve_job_def("digits_pipeline").execute_in_process(
        run_config={"resources": {"digits_settings": {"config": {"model": "simple", "epochs": 1}}}},
        instance=DagsterInstance.get(),
    )
"""

# No `from __future__ import annotations`: Dagster reads the parameter annotations (context,
# resources, inputs) at decoration time.
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    DataVersion,
    MaterializeResult,
    asset,
    asset_check,
    define_asset_job,
)

from mlopsbench.tools.dagster.pipeline.gate import gate_check, promote
from mlopsbench.tools.dagster.pipeline.metadata import stage_metadata
from mlopsbench.tools.dagster.pipeline.resources import AssetFiles, MlflowTracking, core_settings
from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig

GROUP = "digits"


class DigitsSettings(core_settings(DigitsConfig)):  # type: ignore[misc]
    """Every setting of the core's DigitsConfig, with its default and help."""


@asset(group_name=GROUP, kinds={"numpy"})
def digits_data(
    context: AssetExecutionContext, digits_settings: DigitsSettings, files: AssetFiles
) -> MaterializeResult:
    """The images split into train and test (``data.npz``), with their source and digest."""
    data = stages.prepare_data(digits_settings.core_config(), files.folder(context))
    return MaterializeResult(
        value=data, metadata=stage_metadata(data), data_version=DataVersion(data["digest"])
    )


@asset(group_name=GROUP, kinds={"pytorch"})
def digits_model(
    context: AssetExecutionContext,
    digits_data: dict[str, Any],
    digits_settings: DigitsSettings,
    files: AssetFiles,
) -> MaterializeResult:
    """The trained network (safetensors) and its per-epoch history."""
    model = stages.train_model(
        digits_settings.core_config(), digits_data["data_path"], files.folder(context)
    )
    return MaterializeResult(value=model, metadata=stage_metadata(model))


@asset(group_name=GROUP, kinds={"pytorch"})
def digits_evaluation(
    context: AssetExecutionContext,
    digits_data: dict[str, Any],
    digits_model: dict[str, Any],
    digits_settings: DigitsSettings,
    files: AssetFiles,
) -> MaterializeResult:
    """Test metrics, per-class report, confusion matrix, t-SNE and training curve."""
    evaluation = stages.evaluate_model(
        digits_settings.core_config(),
        digits_data["data_path"],
        digits_model["model_dir"],
        files.folder(context),
        history_path=digits_model["history_path"],
    )
    return MaterializeResult(value=evaluation, metadata=stage_metadata(evaluation))


@asset_check(asset=digits_evaluation, blocking=True)
def digits_quality_gate(digits_evaluation: dict[str, Any]) -> AssetCheckResult:
    """The test accuracy reaches the configured threshold."""
    return gate_check(digits_evaluation["gate"])


@asset(group_name=GROUP)
def digits_champion(
    digits_model: dict[str, Any], digits_evaluation: dict[str, Any]
) -> MaterializeResult:
    """The model to use: materialised only from a run whose quality gate passed."""
    return promote(digits_model, digits_evaluation)


@asset(group_name=GROUP, kinds={"mlflow"}, output_required=False)
def digits_mlflow_run(
    context: AssetExecutionContext,
    digits_data: dict[str, Any],
    digits_model: dict[str, Any],
    digits_evaluation: dict[str, Any],
    digits_settings: DigitsSettings,
    mlflow: MlflowTracking,
) -> Iterator[MaterializeResult]:
    """The run in MLflow too (params, metrics, plots, model), when a tracking URI is set."""
    if mlflow.tracking_uri:
        stage_results = {
            "data": digits_data,
            "model": digits_model,
            "evaluation": digits_evaluation,
        }
        logged = mlflow.log_run(context, GROUP, digits_settings, stage_results)
        yield MaterializeResult(value=logged, metadata=stage_metadata(logged))


digits_pipeline = define_asset_job(
    "digits_pipeline",
    selection=AssetSelection.groups(GROUP),
    description="Prepare the digits, train the configured network, evaluate it, gate it.",
)
