"""Sentiment (the paper's IMDB + DistilBERT classifier) as Dagster software-defined assets.

``sentiment_data -> sentiment_model -> sentiment_evaluation -> sentiment_champion``, with the
blocking asset check ``sentiment_quality_gate`` on the evaluation and ``sentiment_mlflow_run``
(materialised only when the ``mlflow`` resource has a tracking URI). Each asset is one call into
the core (``mlopsbench.usecases.sentiment.stages``); what the stage returned is the asset's value
and its metadata. ``sentiment_model`` is the checkpoint as it is, or one trained here (``smoke``:
a tiny DistilBERT on the bundled reviews, offline; ``fine_tune``).

Offline, from the launchpad: ``resources: {sentiment_settings: {config: {smoke: true}}}``.
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
from mlopsbench.usecases.sentiment import stages
from mlopsbench.usecases.sentiment.config import SentimentConfig

GROUP = "sentiment"


class SentimentSettings(core_settings(SentimentConfig)):  # type: ignore[misc]
    """Every setting of the core's SentimentConfig, with its default and help."""


@asset(group_name=GROUP, kinds={"json"})
def sentiment_data(
    context: AssetExecutionContext, sentiment_settings: SentimentSettings, files: AssetFiles
) -> MaterializeResult:
    """The stratified test sample of reviews (``reviews.jsonl``), with its source and digest."""
    data = stages.prepare_data(sentiment_settings.core_config(), files.folder(context))
    return MaterializeResult(
        value=data, metadata=stage_metadata(data), data_version=DataVersion(data["digest"])
    )


@asset(group_name=GROUP, kinds={"pytorch", "huggingface"})
def sentiment_model(
    context: AssetExecutionContext, sentiment_settings: SentimentSettings, files: AssetFiles
) -> MaterializeResult:
    """The classifier: the checkpoint as it is, or trained here (smoke, fine_tune)."""
    model = stages.prepare_model(sentiment_settings.core_config(), files.folder(context))
    return MaterializeResult(value=model, metadata=stage_metadata(model))


@asset(group_name=GROUP, kinds={"pytorch"})
def sentiment_evaluation(
    context: AssetExecutionContext,
    sentiment_data: dict[str, Any],
    sentiment_model: dict[str, Any],
    sentiment_settings: SentimentSettings,
    files: AssetFiles,
) -> MaterializeResult:
    """Accuracy, per-class report, predictions, confusion matrix and embedding plots."""
    evaluation = stages.evaluate_model(
        sentiment_settings.core_config(),
        sentiment_data["data_path"],
        sentiment_model["model_dir"],
        files.folder(context),
        history_path=sentiment_model["history_path"],
    )
    return MaterializeResult(value=evaluation, metadata=stage_metadata(evaluation))


@asset_check(asset=sentiment_evaluation, blocking=True)
def sentiment_quality_gate(sentiment_evaluation: dict[str, Any]) -> AssetCheckResult:
    """The accuracy on the sample reaches the configured threshold."""
    return gate_check(sentiment_evaluation["gate"])


@asset(group_name=GROUP)
def sentiment_champion(
    sentiment_model: dict[str, Any], sentiment_evaluation: dict[str, Any]
) -> MaterializeResult:
    """The model to use: materialised only from a run whose quality gate passed."""
    return promote(sentiment_model, sentiment_evaluation)


@asset(group_name=GROUP, kinds={"mlflow"}, output_required=False)
def sentiment_mlflow_run(
    context: AssetExecutionContext,
    sentiment_data: dict[str, Any],
    sentiment_model: dict[str, Any],
    sentiment_evaluation: dict[str, Any],
    sentiment_settings: SentimentSettings,
    mlflow: MlflowTracking,
) -> Iterator[MaterializeResult]:
    """The run in MLflow too (params, metrics, plots, model), when a tracking URI is set."""
    if mlflow.tracking_uri:
        stage_results = {
            "data": sentiment_data,
            "model": sentiment_model,
            "evaluation": sentiment_evaluation,
        }
        logged = mlflow.log_run(context, GROUP, sentiment_settings, stage_results)
        yield MaterializeResult(value=logged, metadata=stage_metadata(logged))


sentiment_pipeline = define_asset_job(
    "sentiment_pipeline",
    selection=AssetSelection.groups(GROUP),
    description="Sample the reviews, load (or train) the classifier, evaluate it, gate it.",
)
