"""The sweep: N digits trials as one *mapped* task, the best one evaluated and promoted if good.

``prepare_data >> plan_trials >> run_trial[0..N-1] >> select_best >> evaluate_best >>
quality_gate >> promote_best``. ``plan_trials`` returns the trial list and ``run_trial`` is
expanded over it (dynamic task mapping, ``.expand``): the number of task instances is the
``trials`` param of the run, known only at run time, and an executor with several slots runs
them side by side. ``select_best`` is the fan-in over every instance's XCom.
``quality_gate`` is a short-circuit: a best trial below the threshold skips ``promote_best``
(the run still succeeds: the sweep did its work, nothing was promoted).

Each task is one call into ``mlopsbench.usecases.sweep.stages``; the params are the core
config's settings (``SweepConfig``). Files live in ``<artifact root>/mlopsbench_sweep/<run id>/``
(one sub-folder per trial).

Trigger with a conf such as ``{"trials": 4, "models": "simple,deep", "epochs": 1}``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, get_current_context, task

from mlopsbench.result import write_json_atomic
from mlopsbench.tools.airflow.pipeline import alerts
from mlopsbench.tools.airflow.pipeline import dag_support as support
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

PROMOTION_FILE = "promoted.json"  # what promote_best writes: the model a deployment picks up


@dag(
    dag_id="mlopsbench_sweep",
    schedule=support.schedule_from_env(),
    start_date=support.START_DATE,
    catchup=False,
    params=support.dag_params(SweepConfig),
    default_args={
        "owner": "mlopsbench",
        "retries": support.retries_from_env(),
        "retry_delay": support.retry_delay_from_env(),
        "on_failure_callback": alerts.on_task_failure,  # once no retry is left
    },
    on_success_callback=alerts.on_dag_success,
    on_failure_callback=alerts.on_dag_failure,
    tags=["mlopsbench", "sweep"],
    doc_md=__doc__,
)
def mlopsbench_sweep() -> None:
    @task
    def prepare_data() -> dict[str, Any]:
        with support.task_run(SweepConfig) as run:
            return stages.prepare_data(run.config, run.folder)

    @task
    def plan_trials() -> list[dict[str, Any]]:
        with support.task_run(SweepConfig) as run:
            return stages.plan_trials(run.config)

    # The UI (and the REST API's rendered_map_index) names each instance by its trial.
    @task(map_index_template="{{ trial_name }}")
    def run_trial(trial: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        get_current_context()["trial_name"] = trial["name"]  # type: ignore[typeddict-unknown-key]
        with support.task_run(SweepConfig) as run:
            return stages.run_trial(run.config, data["data_path"], trial, run.folder)

    @task
    def select_best(results: list[dict[str, Any]]) -> dict[str, Any]:
        return stages.select_best(list(results))

    @task
    def evaluate_best(data: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
        with support.task_run(SweepConfig) as run:
            return stages.evaluate_best(run.config, data["data_path"], best, run.folder)

    @task.short_circuit
    def quality_gate(evaluation: dict[str, Any]) -> bool:
        return bool(evaluation["gate"]["passed"])

    @task
    def promote_best(best: dict[str, Any]) -> str:
        with support.task_run(SweepConfig) as run:
            promoted = {**best["trial"], "model_dir": best["model_dir"]}
            return str(write_json_atomic(run.folder / PROMOTION_FILE, promoted))

    data = prepare_data()
    results = run_trial.partial(data=data).expand(trial=plan_trials())
    best = select_best(results)
    evaluation = evaluate_best(data, best)
    quality_gate(evaluation) >> promote_best(best)


mlopsbench_sweep()
