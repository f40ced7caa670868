"""Sentiment as a Kubeflow pipeline: sample reviews + load/train the classifier -> evaluate ->
promote if accurate.

Compile it, submit it, or run it on this machine with ``kfp.local``::

    from kfp import compiler
    from mlopsbench.tools.kfp.pipeline.sentiment_pipeline import build_pipeline

    pipeline = build_pipeline(image="REGISTRY/mlopsbench:TAG")  # docker/kfp/Dockerfile
    compiler.Compiler().compile(pipeline, "sentiment_pipeline.yaml")

    import kfp.local
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False))
    pipeline(smoke=True)  # offline: a tiny DistilBERT trained on the bundled reviews

or through mlopsbench: ``mlopsbench kfp compile`` / ``mlopsbench run sentiment --tool kfp``.

The pipeline's parameters are the settings of the core's ``SentimentConfig``, with its
defaults. Every component receives them as one ``settings`` dict (the model step reads the
training split itself and evaluate needs the model settings, so no subset would do) and makes
one call into ``mlopsbench.usecases.sentiment.stages``; what the stage returned becomes its
output's metadata. Data and model do not depend on each other: a cluster runs them in parallel.

No ``from __future__ import annotations``: KFP reads the annotations as types.
"""

from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from mlopsbench.tools.kfp.pipeline.pipeline_helpers import (
    config_parameters,
    lightweight_components,
    promote_if_accurate,
    retry_training,
)
from mlopsbench.usecases.sentiment.config import SentimentConfig


def prepare_sentiment_data(settings: dict, dataset: Output[Dataset]):
    """Sample the configured test reviews into ``dataset/``; source and digest as metadata."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import config_from_settings, describe
    from mlopsbench.usecases.sentiment import stages
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    cfg = config_from_settings(SentimentConfig, settings)
    dataset.metadata.update(describe(stages.prepare_data(cfg, dataset.path), dataset.path))


def prepare_sentiment_model(settings: dict, model: Output[Model], history: Output[Metrics]):
    """The classifier as a Hugging Face folder: the hub/local checkpoint, or (smoke, fine-tune)
    one trained here, with per-epoch metrics in ``history``."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        describe,
        keep_in_artifact,
        log_history,
    )
    from mlopsbench.usecases.sentiment import stages
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    cfg = config_from_settings(SentimentConfig, settings)
    prepared = stages.prepare_model(cfg, model.path)
    # An untrained checkpoint lives outside the artifact (hub cache, local folder): copy it in,
    # so that evaluate (another pod on a cluster) receives the model through KFP.
    prepared["model_dir"] = keep_in_artifact(prepared["model_dir"], model.path)
    model.metadata.update({**describe(prepared, model.path), "params": cfg.to_dict()})
    log_history(history, prepared["history"])


def evaluate_sentiment(
    settings: dict,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Classify the sampled reviews: metrics, confusion matrix, plots, an HTML report.

    Returns the accuracy as the task's single output parameter, which the quality gate reads.
    """
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        file_in,
        optional_file_in,
        publish_evaluation,
    )
    from mlopsbench.usecases.sentiment import stages
    from mlopsbench.usecases.sentiment.config import LABELS, SentimentConfig

    cfg = config_from_settings(SentimentConfig, settings)
    evaluated = stages.evaluate_model(
        cfg,
        file_in(dataset, "data_path"),
        file_in(model, "model_dir"),
        evaluation.path,
        history_path=optional_file_in(model, "history_path"),
    )
    publish_evaluation(
        evaluated,
        labels=LABELS,
        title=f"sentiment · {model.metadata.get('model_name', cfg.model_label)}",
        metrics=metrics,
        confusion=confusion,
        evaluation=evaluation,
        report=report,
    )
    return float(evaluated["gate"]["value"])


def build_pipeline(image: str) -> Any:
    """The sentiment pipeline, its components running in ``image``."""
    component = lightweight_components(image)
    prepare_data = component(prepare_sentiment_data)
    prepare_model = component(prepare_sentiment_model)
    evaluate = component(evaluate_sentiment)

    @dsl.pipeline(
        name="mlopsbench-sentiment",
        description="Sentiment: sample reviews -> load/train model -> evaluate -> promote if "
        "accuracy >= threshold",
    )
    @config_parameters(SentimentConfig)
    def sentiment_pipeline(settings: dict, mlflow_uri: str = "", run_name: str = "") -> None:
        """Classify IMDB-style reviews with DistilBERT; promote the model if accurate enough.

        Args:
            mlflow_uri: Also log the promoted run to this MLflow tracking URI (empty: do not).
            run_name: The MLflow run's name (empty: kfp-sentiment).
        """
        data = prepare_data(settings=settings)
        model = retry_training(prepare_model(settings=settings))
        evaluated = evaluate(
            settings=settings, dataset=data.outputs["dataset"], model=model.outputs["model"]
        )
        promote_if_accurate(
            component,
            usecase="sentiment",
            settings=settings,
            data=data,
            model=model,
            evaluate=evaluated,
            mlflow_uri=mlflow_uri,
            run_name=run_name,
        )

    return sentiment_pipeline
