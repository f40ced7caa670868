"""The sweep as a Kubeflow pipeline: data + plan -> ParallelFor(run trial) -> Collected ->
select the best -> evaluate it -> promote it if accurate.

Compile it, submit it, or run it on this machine with ``kfp.local``::

    from kfp import compiler
    from mlopsbench.tools.kfp.pipeline.sweep_pipeline import build_pipeline

    pipeline = build_pipeline(image="REGISTRY/mlopsbench:TAG", workers=4)
    compiler.Compiler().compile(pipeline, "sweep_pipeline.yaml")

    import kfp.local
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False))
    pipeline(trials=4, models="simple,deep", epochs=1, workers=2)

or through mlopsbench: ``mlopsbench kfp compile -u sweep`` / ``mlopsbench run sweep --tool kfp``.

The trials come from ``plan-sweep``'s output at run time, so the number of ``run-sweep-trial``
tasks is the ``trials`` argument of the run. KFP's ``parallelism`` is a compile-time integer
(the ``iteratorPolicy`` of the loop), not a pipeline input: ``build_pipeline(workers=...)``
bakes the sweep's ``workers`` setting in. Each trial's model folder is its own ``Model``
output; ``dsl.Collected`` hands all of them to ``select-best-trial``, which copies the winner
into its ``best`` output (on a cluster the next pod sees only artifacts it is given).

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
from mlopsbench.usecases.sweep.config import SweepConfig


def prepare_sweep_data(settings: dict, dataset: Output[Dataset]):
    """Load the digits once for every trial into ``dataset/data.npz``."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import config_from_settings, describe
    from mlopsbench.usecases.sweep import stages
    from mlopsbench.usecases.sweep.config import SweepConfig

    cfg = config_from_settings(SweepConfig, settings)
    dataset.metadata.update(describe(stages.prepare_data(cfg, dataset.path), dataset.path))


def plan_sweep(settings: dict) -> list[dict]:
    """The trials (model, lr, batch size) the loop fans out over, drawn by the core."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import config_from_settings
    from mlopsbench.usecases.sweep import stages
    from mlopsbench.usecases.sweep.config import SweepConfig

    return stages.plan_trials(config_from_settings(SweepConfig, settings))


def run_sweep_trial(
    settings: dict,
    dataset: Input[Dataset],
    trial: dict,
    model: Output[Model],
    history: Output[Metrics],
):
    """Train and score one trial: its folder in ``model``, its result as the metadata."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        describe,
        file_in,
        log_history,
    )
    from mlopsbench.usecases.sweep import stages
    from mlopsbench.usecases.sweep.config import SweepConfig

    cfg = config_from_settings(SweepConfig, settings)
    result = stages.run_trial(cfg, file_in(dataset, "data_path"), trial, model.path)
    # The sweep's settings with this trial's point of the space: what the model was trained with.
    params = {**cfg.to_dict(), **result["trial"]}
    model.metadata.update({**describe(result, model.path), "params": params})
    log_history(history, result["history"])


def select_best_trial(trials: Input[list[Model]], best: Output[Model]):
    """The fan-in: every trial's ``model`` output, the most accurate one copied to ``best``."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import keep_trial, trial_result
    from mlopsbench.usecases.sweep import stages

    chosen = stages.select_best([trial_result(trial) for trial in trials])
    best.metadata.update(keep_trial(chosen, best.path))


def evaluate_best_trial(
    settings: dict,
    dataset: Input[Dataset],
    best: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Score the best trial's model on the test split: metrics, confusion matrix, plots,
    an HTML report. Returns the accuracy (the quality gate's value)."""
    from mlopsbench.tools.kfp.pipeline.component_helpers import (
        config_from_settings,
        file_in,
        publish_evaluation,
        trial_result,
    )
    from mlopsbench.usecases.digits.evaluate import DIGIT_LABELS
    from mlopsbench.usecases.sweep import stages
    from mlopsbench.usecases.sweep.config import SweepConfig

    cfg = config_from_settings(SweepConfig, settings)
    chosen = trial_result(best)
    evaluated = stages.evaluate_best(cfg, file_in(dataset, "data_path"), chosen, evaluation.path)
    publish_evaluation(
        evaluated,
        labels=DIGIT_LABELS,
        title=f"sweep · best {chosen['trial']['name']} ({chosen['trial']['model']})",
        metrics=metrics,
        confusion=confusion,
        evaluation=evaluation,
        report=report,
    )
    return float(evaluated["gate"]["value"])


def build_pipeline(image: str, workers: int = SweepConfig().workers) -> Any:
    """The sweep pipeline, its components running in ``image``, ``workers`` trials at a time."""
    component = lightweight_components(image)
    prepare = component(prepare_sweep_data)
    plan = component(plan_sweep)
    run_trial = component(run_sweep_trial)
    select = component(select_best_trial)
    evaluate = component(evaluate_best_trial)

    @dsl.pipeline(
        name="mlopsbench-sweep",
        description=f"Sweep: prepare data, plan trials -> ParallelFor trials ({workers} at a "
        "time) -> Collected -> select the best -> evaluate it -> promote if accuracy >= "
        "threshold",
    )
    @config_parameters(SweepConfig)
    def sweep_pipeline(settings: dict, mlflow_uri: str = "", run_name: str = "") -> None:
        """Train the sampled digits trials in parallel, evaluate the most accurate one and
        promote it if accurate enough.

        The loop's parallelism is fixed when the pipeline is built (its ``workers``); the
        ``workers`` input only records it.

        Args:
            mlflow_uri: Also log the promoted best trial to this MLflow tracking URI (empty: no).
            run_name: The MLflow run's name (empty: kfp-sweep).
        """
        data = prepare(settings=settings)
        planned = plan(settings=settings)
        with dsl.ParallelFor(planned.output, parallelism=workers) as trial:
            trained = retry_training(
                run_trial(settings=settings, dataset=data.outputs["dataset"], trial=trial)
            )
        best = select(trials=dsl.Collected(trained.outputs["model"]))
        evaluated = evaluate(
            settings=settings, dataset=data.outputs["dataset"], best=best.outputs["best"]
        )
        promote_if_accurate(
            component,
            usecase="sweep",
            settings=settings,
            data=data,
            model=best,
            evaluate=evaluated,
            mlflow_uri=mlflow_uri,
            run_name=run_name,
            model_output="best",
        )

    return sweep_pipeline
