"""Digits (the paper's MNIST classifier) as an Airflow 3 TaskFlow DAG.

``prepare_data >> train_model >> evaluate_model >> quality_gate``, plus ``log_to_mlflow`` next to
the gate (skipped unless a tracking URI is given). Each task is one call into
``mlopsbench.usecases.digits.stages``; XCom carries small JSON only (paths, metrics, history),
files live in ``<artifact root>/mlopsbench_digits/<run id>/``.

Trigger with a conf such as ``{"model": "simple", "epochs": 1}``; schedule with
``MLOPSBENCH_AIRFLOW_SCHEDULE="0 3 * * *"`` in the scheduler's and DAG processor's environment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from mlopsbench.tools.airflow import dag_support as support
from mlopsbench.tools.airflow.common import DIGITS_DAG_ID

USECASE = "digits"


@dag(dag_id=DIGITS_DAG_ID, doc_md=__doc__, **support.dag_kwargs(USECASE))
def mlopsbench_digits() -> None:
    @task
    def prepare_data() -> dict[str, Any]:
        from mlopsbench.usecases.digits import stages

        run = support.current_run(USECASE)
        with support.core_stage() as watch:
            data = stages.prepare_data(run.config, run.folder)
        return {**data, "run_dir": str(run.folder), **watch.as_xcom()}

    @task
    def train_model(data: dict[str, Any]) -> dict[str, Any]:
        from mlopsbench.usecases.digits import stages

        run = support.current_run(USECASE)
        with support.core_stage() as watch:
            model = stages.train_model(run.config, data["data_path"], run.folder)
        return {**model, **watch.as_xcom()}

    @task
    def evaluate_model(data: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        from mlopsbench.usecases.digits import stages

        run = support.current_run(USECASE)
        with support.core_stage() as watch:
            evaluation = stages.evaluate_model(
                run.config,
                data["data_path"],
                model["model_dir"],
                run.folder,
                history_path=model["history_path"],
            )
        return {**evaluation, **watch.as_xcom()}

    @task
    def quality_gate(evaluation: dict[str, Any]) -> dict[str, Any]:
        return support.quality_gate(evaluation)

    @task
    def log_to_mlflow(
        data: dict[str, Any], model: dict[str, Any], evaluation: dict[str, Any]
    ) -> dict[str, Any]:
        return support.log_to_mlflow(USECASE, data, model, evaluation)

    data = prepare_data()
    model = train_model(data)
    evaluation = evaluate_model(data, model)
    quality_gate(evaluation)
    log_to_mlflow(data, model, evaluation)


mlopsbench_digits()
