"""Digits as a Kubeflow pipeline: prepare data -> train -> evaluate -> promote if accurate.

Compile it, submit it, or run it on this machine with ``kfp.local``::

    from kfp import compiler
    from mlopsbench.tools.kfp.pipeline.digits_pipeline import build_pipeline

    pipeline = build_pipeline(image="REGISTRY/mlopsbench:TAG")  # docker/kfp/Dockerfile
    compiler.Compiler().compile(pipeline, "digits_pipeline.yaml")

    import kfp.local
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False))
    pipeline(model="simple", epochs=1)

or through mlopsbench: ``mlopsbench kfp compile`` / ``mlopsbench run digits --tool kfp``.

The pipeline's parameters are the settings of the core's ``DigitsConfig`` (``model``,
``epochs``, ..., ``data_source``, ``data_path``), with its defaults. Every component receives
them as one ``settings`` dict and makes one call into ``mlopsbench.usecases.digits.stages``;
what the stage returned becomes its output's metadata. KFP runs each component's source in a
fresh Python process (a pod on a cluster), so every import sits inside the body.

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
from mlopsbench.usecases.digits.config import DigitsConfig


def prepare_digits_data(settings: dict, dataset: Output[Dataset]):
    """Load the configured images into ``dataset/data.npz``; source and digest as metadata."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import config_from_settings, describe
    from mlopsbench.usecases.digits import stages
    from mlopsbench.usecases.digits.config import DigitsConfig

    cfg = config_from_settings(DigitsConfig, settings)
    dataset.metadata.update(describe(stages.prepare_data(cfg, dataset.path), dataset.path))


def train_digits(
    settings: dict, dataset: Input[Dataset], model: Output[Model], history: Output[Metrics]
):
    """Train the network: safetensors folder + history.json, per-epoch metrics in ``history``."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        describe,
        file_in,
        log_history,
    )
    from mlopsbench.usecases.digits import stages
    from mlopsbench.usecases.digits.config import DigitsConfig

    cfg = config_from_settings(DigitsConfig, settings)
    trained = stages.train_model(cfg, file_in(dataset, "data_path"), model.path)
    model.metadata.update({**describe(trained, model.path), "params": cfg.to_dict()})
    log_history(history, trained["history"])


def evaluate_digits(
    settings: dict,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Score the model on the test split: metrics, confusion matrix, plots, an HTML report.

    Returns the accuracy as the task's single output parameter, which the quality gate reads.
    (A NamedTuple output is not resolved by kfp.local's condition evaluator, 2.17.3.)
    """
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        file_in,
        optional_file_in,
        publish_evaluation,
    )
    from mlopsbench.usecases.digits import stages
    from mlopsbench.usecases.digits.config import DigitsConfig
    from mlopsbench.usecases.digits.evaluate import DIGIT_LABELS

    cfg = config_from_settings(DigitsConfig, settings)
    evaluated = stages.evaluate_model(
        cfg,
        file_in(dataset, "data_path"),
        file_in(model, "model_dir"),
        evaluation.path,
        history_path=optional_file_in(model, "history_path"),
    )
    publish_evaluation(
        evaluated,
        labels=DIGIT_LABELS,
        title=f"digits · {cfg.model}",
        metrics=metrics,
        confusion=confusion,
        evaluation=evaluation,
        report=report,
    )
    return float(evaluated["gate"]["value"])


def build_pipeline(image: str) -> Any:
    """The digits pipeline, its components running in ``image``."""
    component = lightweight_components(image)
    prepare = component(prepare_digits_data)
    train = component(train_digits)
    evaluate = component(evaluate_digits)

    @dsl.pipeline(
        name="mlopsbench-digits",
        description="Digits: prepare data -> train -> evaluate -> promote if accuracy >= threshold",
    )
    @config_parameters(DigitsConfig)
    def digits_pipeline(settings: dict, mlflow_uri: str = "", run_name: str = "") -> None:
        """Train and evaluate the paper's digit classifier; promote it if accurate enough.

        Args:
            mlflow_uri: Also log the promoted run to this MLflow tracking URI (empty: do not).
            run_name: The MLflow run's name (empty: kfp-digits).
        """
        data = prepare(settings=settings)
        trained = retry_training(train(settings=settings, dataset=data.outputs["dataset"]))
        evaluated = evaluate(
            settings=settings, dataset=data.outputs["dataset"], model=trained.outputs["model"]
        )
        promote_if_accurate(
            component,
            usecase="digits",
            settings=settings,
            data=data,
            model=trained,
            evaluate=evaluated,
            mlflow_uri=mlflow_uri,
            run_name=run_name,
        )

    return digits_pipeline
