"""The sweep (N digits trials, the best one evaluated and gated) as Dagster assets.

``sweep_data -> sweep_model -> sweep_evaluation -> sweep_champion -> sweep_mlflow_run``.
``sweep_model`` is a graph-backed asset: inside it ``plan_trials`` yields one
``DynamicOutput`` per trial (how many is a setting, read at run time), ``run_trial`` is mapped
over them (one step per trial, retried with exponential back-off) and ``select_best`` collects
them; the asset's value is the best trial. The job runs on Dagster's multiprocess executor, so
``max_concurrent`` trials train at once::

    execution: {config: {multiprocess: {max_concurrent: 2}}}
    resources: {sweep_settings: {config: {trials: 4, models: "simple,deep", epochs: 1}}}

``sweep_quality_gate`` reports the gate on the evaluation (not blocking: the sweep's run
succeeds either way); the champion is materialised only when the gate passed, and the MLflow
run, which takes the champion as input, is skipped when it was not.
"""

# No `from __future__ import annotations`: Dagster reads the parameter annotations (context,
# resources, inputs) at decoration time.
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    Backoff,
    DataVersion,
    DynamicOut,
    DynamicOutput,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    Output,
    RetryPolicy,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
    graph_asset,
    multi_or_in_process_executor,
    op,
)

from mlopsbench.tools.dagster.pipeline.gate import gate_check, promote
from mlopsbench.tools.dagster.pipeline.metadata import stage_metadata
from mlopsbench.tools.dagster.pipeline.resources import AssetFiles, MlflowTracking, core_settings
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

GROUP = "sweep"
MODEL_ASSET = "sweep_model"  # the graph-backed asset: its trials write under its folder


class SweepSettings(core_settings(SweepConfig)):  # type: ignore[misc]
    """Every setting of the core's SweepConfig, with its default and help."""


@asset(group_name=GROUP, kinds={"numpy"})
def sweep_data(
    context: AssetExecutionContext, sweep_settings: SweepSettings, files: AssetFiles
) -> MaterializeResult:
    """The digits every trial trains on (``data.npz``), with their digest as data version."""
    data = stages.prepare_data(sweep_settings.core_config(), files.folder(context))
    return MaterializeResult(
        value=data, metadata=stage_metadata(data), data_version=DataVersion(data["digest"])
    )


@op(out=DynamicOut(dict))
def plan_trials(sweep_settings: SweepSettings) -> Iterator[DynamicOutput]:
    """One output per trial of the space (``trials`` of them): the fan-out."""
    for trial in stages.plan_trials(sweep_settings.core_config()):
        yield DynamicOutput(trial, mapping_key=trial["name"].replace("-", "_"))


# A trial that fails for a passing reason (a killed worker, a full disk) is tried again.
@op(retry_policy=RetryPolicy(max_retries=2, delay=1.0, backoff=Backoff.EXPONENTIAL))
def run_trial(
    context: OpExecutionContext,
    sweep_data: dict[str, Any],
    trial: dict[str, Any],
    sweep_settings: SweepSettings,
    files: AssetFiles,
) -> Output:
    """Train and score one trial (in ``<sweep_model folder>/<trial name>/``)."""
    result = stages.run_trial(
        sweep_settings.core_config(),
        sweep_data["data_path"],
        trial,
        files.folder(context, MODEL_ASSET),
    )
    return Output(result, metadata=stage_metadata(result))


@op
def select_best(results: list[dict[str, Any]]) -> Output:
    """The fan-in: the most accurate trial; every trial's row stays in the metadata."""
    best = stages.select_best(results)
    table = MetadataValue.json(stages.trial_table(results))
    return Output(best, metadata={**stage_metadata(best), "trials": table})


@graph_asset(group_name=GROUP, kinds={"pytorch"})
def sweep_model(sweep_data: dict[str, Any]) -> Any:
    """The best of the sweep's trials, each trained in a step of its own."""
    results = plan_trials().map(lambda trial: run_trial(sweep_data, trial))
    return select_best(results.collect())


@asset(group_name=GROUP, kinds={"pytorch"})
def sweep_evaluation(
    context: AssetExecutionContext,
    sweep_data: dict[str, Any],
    sweep_model: dict[str, Any],
    sweep_settings: SweepSettings,
    files: AssetFiles,
) -> MaterializeResult:
    """The best trial's test metrics, per-class report, plots and gate."""
    evaluation = stages.evaluate_best(
        sweep_settings.core_config(), sweep_data["data_path"], sweep_model, files.folder(context)
    )
    return MaterializeResult(value=evaluation, metadata=stage_metadata(evaluation))


@asset_check(asset=sweep_evaluation)
def sweep_quality_gate(sweep_evaluation: dict[str, Any]) -> AssetCheckResult:
    """The best trial's test accuracy reaches the configured threshold."""
    return gate_check(sweep_evaluation["gate"])


@asset(group_name=GROUP, output_required=False)
def sweep_champion(
    sweep_model: dict[str, Any], sweep_evaluation: dict[str, Any]
) -> Iterator[MaterializeResult]:
    """The best trial's model, materialised only when it passed the gate (else: no output,
    and what needs the champion is skipped)."""
    if sweep_evaluation["gate"]["passed"]:
        model = {"model_dir": sweep_model["model_dir"], "model_name": sweep_model["trial"]["model"]}
        yield promote(model, sweep_evaluation)


@asset(group_name=GROUP, kinds={"mlflow"}, output_required=False)
def sweep_mlflow_run(
    context: AssetExecutionContext,
    sweep_data: dict[str, Any],
    sweep_model: dict[str, Any],
    sweep_evaluation: dict[str, Any],
    sweep_champion: dict[str, Any],
    sweep_settings: SweepSettings,
    mlflow: MlflowTracking,
) -> Iterator[MaterializeResult]:
    """The champion's run in MLflow (params, metrics, plots, model), when a URI is set."""
    del sweep_champion  # an input only so that a model below its gate never reaches MLflow
    if mlflow.tracking_uri:
        stage_results = {"data": sweep_data, "model": sweep_model, "evaluation": sweep_evaluation}
        logged = mlflow.log_run(context, GROUP, sweep_settings, stage_results)
        yield MaterializeResult(value=logged, metadata=stage_metadata(logged))


sweep_pipeline = define_asset_job(
    "sweep_pipeline",
    selection=AssetSelection.groups(GROUP),
    description="Prepare the digits, train every trial (max_concurrent at once), gate the best.",
    # in_process (one trial after another) or multiprocess with max_concurrent, per run
    executor_def=multi_or_in_process_executor,
)

# The sweep again every night, at the parallelism its settings default to.
sweep_nightly = ScheduleDefinition(
    name="sweep_nightly",
    job=sweep_pipeline,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    run_config={
        "execution": {"config": {"multiprocess": {"max_concurrent": SweepConfig().workers}}}
    },
)
