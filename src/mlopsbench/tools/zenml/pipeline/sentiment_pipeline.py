"""The paper's IMDB + DistilBERT sentiment classifier as a ZenML pipeline.

load_data -> load_model -> evaluate_model -> promote_if_accurate [-> log_to_mlflow]. Run it like
any ZenML pipeline, on the active stack (the default one: a SQLite store and a local artifact
store under ``$ZENML_CONFIG_PATH``, else ``~/.config/zenml``)::

    export ZENML_ANALYTICS_OPT_IN=false
    python src/mlopsbench/tools/zenml/pipeline/sentiment_pipeline.py smoke=true   # offline
    python src/mlopsbench/tools/zenml/pipeline/sentiment_pipeline.py model_path=./distilbert-sst2
    zenml login --local        # the dashboard: runs, artifacts, the model and its versions

or from Python: ``run_pipeline(SentimentConfig(smoke=True))``. Through mlopsbench:
``mlopsbench run sentiment --tool zenml --smoke``.

The pipeline's parameters are the settings of the core's ``SentimentConfig`` with its defaults;
every step receives the config and makes one call into ``mlopsbench.usecases.sentiment.stages``.
Artifacts: the test sample (a folder with ``reviews.jsonl``), the checkpoint evaluated (the
model artifact of the run's version of the ``sentiment-<model>`` model: the hub/local model as
is, or the one this run trained with ``smoke`` or ``fine_tune``), what each stage returned, the
evaluation files and an HTML report the dashboard shows. ``mlflow_uri`` (or
``$MLFLOW_TRACKING_URI``) also records the run in MLflow.
"""

import sys
from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, Model, log_metadata, pipeline, step
from zenml.config.retry_config import StepRetryConfig
from zenml.enums import ArtifactType
from zenml.models import PipelineRunResponse
from zenml.types import HTMLString

from mlopsbench.tools.zenml.pipeline.pipeline_helpers import (
    config_from_argv,
    config_parameters,
    dataset_metadata,
    folder_of,
    json_file,
    self_contained,
    step_dir,
    tracking_uri,
)
from mlopsbench.tools.zenml.pipeline.report import evaluation_report
from mlopsbench.tools.zenml.pipeline.shared_steps import log_to_mlflow, promote_if_accurate
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.sentiment import USECASE, stages
from mlopsbench.usecases.sentiment.config import SentimentConfig


@step(retry=StepRetryConfig(max_retries=2))  # the hub's IMDB can fail transiently
def load_data(
    cfg: SentimentConfig,
) -> tuple[Annotated[Path, "dataset"], Annotated[dict[str, Any], "data_info"]]:
    """Draw the stratified test sample into ``reviews.jsonl``; its source and digest describe it."""
    prepared = stages.prepare_data(cfg, step_dir())
    log_metadata(dataset_metadata(prepared), artifact_name="dataset", infer_artifact=True)
    return folder_of(prepared, "data_path"), prepared


@step
def load_model(
    cfg: SentimentConfig,
) -> tuple[
    Annotated[Path, ArtifactConfig(name="model", artifact_type=ArtifactType.MODEL)],
    Annotated[dict[str, Any], "model_info"],
]:
    """The checkpoint to evaluate (trained here with ``smoke`` or ``fine_tune``); it becomes
    the model version's model artifact."""
    workdir = step_dir()
    prepared = stages.prepare_model(cfg, workdir)
    return self_contained(prepared["model_dir"], workdir), prepared


@step
def evaluate_model(
    cfg: SentimentConfig, dataset: Path, model: Path, model_info: dict[str, Any]
) -> tuple[
    Annotated[dict[str, Any], "evaluation"],
    Annotated[Path, "evaluation_files"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Classify the test sample; its metrics go to the model version."""
    workdir = step_dir()
    evaluation = stages.evaluate_model(
        cfg,
        dataset / stages.DATA_FILE,
        model,
        workdir,
        history_path=json_file(model_info["history"], workdir / stages.HISTORY_FILE),
    )
    log_metadata({"metrics": evaluation["metrics"], "gate": evaluation["gate"]}, infer_model=True)
    return evaluation, workdir, evaluation_report(f"sentiment · {cfg.model_label}", evaluation)


@pipeline
@config_parameters(SentimentConfig)
def sentiment_pipeline(cfg: SentimentConfig, mlflow_uri: str = "") -> None:
    """Classify movie reviews; promote the model version if accurate enough."""
    dataset, data_info = load_data(cfg)
    model, model_info = load_model(cfg)
    evaluation, evaluation_files, _ = evaluate_model(cfg, dataset, model, model_info)
    promote_if_accurate(evaluation)
    uri = tracking_uri(mlflow_uri)
    if uri:
        log_to_mlflow(
            uri,
            USECASE.name,
            cfg.to_dict(),
            dataset,
            data_info,
            model,
            model_info,
            evaluation,
            evaluation_files,
        )


def run_pipeline(cfg: SentimentConfig, mlflow_uri: str = "") -> PipelineRunResponse:
    """One run for ``cfg``: a new version of the ``sentiment-<model>`` model comes with it."""
    model = Model(name=USECASE.registered_name(cfg), description=USECASE.title)
    return sentiment_pipeline.with_options(model=model)(**flat_values(cfg), mlflow_uri=mlflow_uri)


if __name__ == "__main__":
    run_pipeline(config_from_argv(SentimentConfig, sys.argv[1:]))
