"""A hyper-parameter sweep over the digits classifier as a Prefect flow.

``prepare -> plan -> run_trial.map(trials) -> select_best -> evaluate_best -> [log_to_mlflow]
-> quality_gate -> promote_model``. The trials are Prefect's own fan-out (``Task.map``): one task
run per trial, as many at a time as the flow's task runner allows, which ``workers`` sets::

    FLOW=src/mlopsbench/tools/prefect/pipeline/sweep_flow.py
    python $FLOW                                        # the core's defaults (8 trials)
    python $FLOW '{"trials": 4, "models": "simple,deep", "epochs": 1, "workers": 2}'

Through the harness: ``mlopsbench run sweep --tool prefect --trials 4 --workers 2``. With
``workers`` > 1 the trials run in task processes: give them a server (``PREFECT_API_URL``), as
the harness does; on a temporary API each task process would start a temporary API of its own.

Each task is one call into the core (``mlopsbench.usecases.sweep.stages``) and returns what the
stage returned, persisted as the task's result: the trials' results are the task runs' results,
queryable through Prefect's client. ``prepare`` and ``run_trial`` are cached on their inputs
(not on the run's folder): running the flow again in the same Prefect home and result storage
after a failure reuses every finished trial (state ``Cached``) and runs only the rest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prefect import Flow, flow, task, unmapped
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from mlopsbench.tools.prefect.pipeline.reports import (
    artifact_key,
    publish_evaluation,
    publish_history,
    publish_trials,
)
from mlopsbench.tools.prefect.pipeline.settings import settings_model
from mlopsbench.tools.prefect.pipeline.shared_tasks import (
    log_to_mlflow,
    mlflow_tracking_uri,
    promote_model,
    quality_gate,
    retry_unless_bad_input,
    run_folder,
)
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

SweepSettings = settings_model(SweepConfig)  # trials, models, workers, ...: the core's settings

# Same inputs, same result, whichever run's folder the files went to: a re-run resumes.
RESUMABLE = (TASK_SOURCE + INPUTS) - "folder"


@task(cache_policy=RESUMABLE)
def prepare(config: SweepConfig, folder: Path) -> dict[str, Any]:
    """Load the digits once for every trial (``data.npz``, with its lineage)."""
    return stages.prepare_data(config, folder)


@task
def plan(config: SweepConfig) -> list[dict[str, Any]]:
    """The trials (model, learning rate, batch size), drawn from the space by the core."""
    return stages.plan_trials(config)


@task(
    task_run_name="trial-{trial[index]:02d}",
    cache_policy=RESUMABLE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),  # 2 s, then 4 s
    retry_condition_fn=retry_unless_bad_input,
)
def run_trial(
    config: SweepConfig, data: dict[str, Any], trial: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Train and score one trial in ``<folder>/<trial name>/``."""
    return stages.run_trial(config, data["data_path"], trial, folder)


@task
def select_best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fan-in: the most accurate trial; every trial's row goes to a table artifact."""
    publish_trials(stages.trial_table(results), key=artifact_key("sweep", "trials"))
    return stages.select_best(results)


@task
def evaluate_best(
    config: SweepConfig, data: dict[str, Any], best: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Score the best trial's model as a run scores its model; report, plots and history become
    artifacts."""
    evaluation = stages.evaluate_best(config, data["data_path"], best, folder)
    trial = best["trial"]
    publish_history(best["history"], key=artifact_key("sweep", "best", "history"))
    publish_evaluation(
        evaluation,
        key=artifact_key("sweep", "best", "evaluation"),
        title=f"Sweep · best of {config.trials}: {trial['name']} ({trial['model']})",
        facts={
            "dataset": f"{data['source']} (digest {data['digest']})",
            "lr": trial["lr"],
            "batch size": trial["batch_size"],
            "epochs": config.epochs,
        },
    )
    return evaluation


@flow(name="sweep", persist_result=True, result_serializer="json")
def sweep_pipeline(
    config: SweepSettings = SweepSettings(),
    work_dir: str = "flow-runs",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Run every trial of the sweep, evaluate the best one and promote it past the gate.

    Args:
        config: The sweep settings of the core (defaults: 8 trials over three architectures).
            ``workers`` is the task runner's size: run the flow through :func:`with_workers`.
        work_dir: Where each flow run writes its files (``<work_dir>/<flow run id>/``).
        mlflow_uri: Also log the best trial, as a digits run with the trial's settings, to
            this MLflow tracking URI (default: ``$MLFLOW_TRACKING_URI``, else not at all).
    """
    cfg: SweepConfig = config.to_config()
    folder = run_folder(work_dir)
    data = prepare(cfg, folder)
    trials = plan(cfg)  # known only now: the number of task runs is set at run time
    results = run_trial.map(unmapped(cfg), unmapped(data), trials, unmapped(folder))
    best = select_best(results)
    evaluation = evaluate_best(cfg, data, best, folder)
    uri = mlflow_tracking_uri(mlflow_uri)
    if uri:  # before the gate; the best trial is a digits model with its own settings
        best_config = stages.trial_config(cfg, best["trial"])
        log_to_mlflow(uri, "digits", best_config, data, best, evaluation, folder)
    quality_gate(evaluation)  # below the gate: the flow run fails, nothing is promoted
    promote_model({**best, "model_name": best["trial"]["model"]}, key=artifact_key("sweep"))
    return {"metrics": evaluation["metrics"], "gate": evaluation["gate"], "best": best["trial"]}


def with_workers(workers: int) -> Flow[..., dict[str, Any]]:
    """The flow with ``workers`` trials at a time: Prefect fixes a flow's task runner when the
    flow is built, so the parallelism setting picks it through ``with_options``. Parallel
    trials run in processes: torch's default random generator (dropout) is one per process,
    and trials in threads would draw from it in turn and no longer reproduce."""
    if workers == 1:  # one at a time, in the flow's own process
        return sweep_pipeline.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    return sweep_pipeline.with_options(task_runner=ProcessPoolTaskRunner(max_workers=workers))


if __name__ == "__main__":
    settings = SweepSettings(**(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
    with_workers(settings.workers)(config=settings)
