"""Digits (the paper's MNIST classifier) as an Airflow 3 TaskFlow DAG.

``prepare_data >> build_model >> evaluate_model >> quality_gate``, plus ``log_to_mlflow`` next to
the gate, so that runs failing the gate are tracked too (skipped unless a tracking URI is given).
Each task is one call into ``mlopsbench.usecases.digits.stages`` and returns what the stage
returned: XCom carries small JSON only (paths, metrics, history, the stage's seconds); files live
in ``<artifact root>/mlopsbench_digits/<run id>/``.

Trigger with a conf such as ``{"model": "simple", "epochs": 1}``; schedule with
``MLOPSBENCH_AIRFLOW_SCHEDULE="0 3 * * *"`` in the scheduler's and DAG processor's environment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from mlopsbench.tools.airflow.pipeline import alerts
from mlopsbench.tools.airflow.pipeline import dag_support as support
from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig


@dag(
    dag_id="mlopsbench_digits",
    schedule=support.schedule_from_env(),
    start_date=support.START_DATE,
    catchup=False,
    params=support.dag_params(DigitsConfig),
    default_args={
        "owner": "mlopsbench",
        "retries": support.retries_from_env(),
        "retry_delay": support.retry_delay_from_env(),
        "on_failure_callback": alerts.on_task_failure,  # once no retry is left
    },
    on_success_callback=alerts.on_dag_success,
    on_failure_callback=alerts.on_dag_failure,
    tags=["mlopsbench", "digits"],
    doc_md=__doc__,
)
def mlopsbench_digits() -> None:
    @task
    def prepare_data() -> dict[str, Any]:
        with support.task_run(DigitsConfig) as run:
            return stages.prepare_data(run.config, run.folder)

    @task
    def build_model(data: dict[str, Any]) -> dict[str, Any]:
        with support.task_run(DigitsConfig) as run:
            return stages.train_model(run.config, data["data_path"], run.folder)

    @task
    def evaluate_model(data: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        with support.task_run(DigitsConfig) as run:
            return stages.evaluate_model(
                run.config,
                data["data_path"],
                model["model_dir"],
                run.folder,
                history_path=model["history_path"],
            )

    @task
    def quality_gate(evaluation: dict[str, Any]) -> dict[str, Any]:
        return support.quality_gate(evaluation)

    @task
    def log_to_mlflow(
        data: dict[str, Any], model: dict[str, Any], evaluation: dict[str, Any]
    ) -> dict[str, Any]:
        with support.task_run(DigitsConfig) as run:
            return support.log_to_mlflow(run, "digits", data, model, evaluation)

    data = prepare_data()
    model = build_model(data)
    evaluation = evaluate_model(data, model)
    quality_gate(evaluation)
    log_to_mlflow(data, model, evaluation)


mlopsbench_digits()
