"""The digits models side by side: one dataset, each model trained and evaluated in its own task.

``prepare_data >> build_model[simple, deep, cnn] >> evaluate_model[...] >> pick_best``. The
training and evaluation tasks are *mapped* over the ``models`` param (dynamic task mapping,
``.expand``): independent task instances that an executor with several slots or workers runs at
the same time. ``pick_best`` names the most accurate model and applies the quality gate to it.

Each task is one call into ``mlopsbench.usecases.digits.stages``; the other params are the core
config's settings, as in ``mlopsbench_digits``. Files live in
``<artifact root>/mlopsbench_digits_models/<run id>/`` (one sub-folder per model): with workers on
several machines that root must be a volume they all mount.

Trigger with a conf such as ``{"models": ["simple", "cnn"], "epochs": 1}``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from mlopsbench.tools.airflow.pipeline import alerts
from mlopsbench.tools.airflow.pipeline import dag_support as support
from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig

MODELS = "models"  # the DAG's own param: which architectures to train


@dag(
    dag_id="mlopsbench_digits_models",
    schedule=support.schedule_from_env(),
    start_date=support.START_DATE,
    catchup=False,
    params={
        **support.dag_params(DigitsConfig),
        MODELS: support.choices_param(DigitsConfig, "model", "Models to train side by side."),
    },
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
def mlopsbench_digits_models() -> None:
    @task
    def prepare_data() -> dict[str, Any]:
        with support.task_run(DigitsConfig, [MODELS]) as run:
            return stages.prepare_data(run.config, run.folder)

    @task
    def models_to_train() -> list[str]:
        with support.task_run(DigitsConfig, [MODELS]) as run:
            return list(run.params[MODELS])

    @task
    def build_model(model: str, data: dict[str, Any]) -> dict[str, Any]:
        with support.task_run(DigitsConfig, [MODELS], model=model) as run:
            folder = run.folder / model
            folder.mkdir(exist_ok=True)
            return stages.train_model(run.config, data["data_path"], folder)

    @task
    def evaluate_model(model: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        name = model["model_name"]
        with support.task_run(DigitsConfig, [MODELS], model=name) as run:
            evaluation = stages.evaluate_model(
                run.config,
                data["data_path"],
                model["model_dir"],
                run.folder / name,
                history_path=model["history_path"],
            )
            return {**evaluation, "model_name": name}

    @task
    def pick_best(evaluations: list[dict[str, Any]]) -> dict[str, Any]:
        scores = {e["model_name"]: e["metrics"]["accuracy"] for e in evaluations}
        best = max(evaluations, key=lambda e: e["metrics"]["accuracy"])
        return {"best": best["model_name"], "accuracy": scores, **support.quality_gate(best)}

    data = prepare_data()
    trained = build_model.partial(data=data).expand(model=models_to_train())
    evaluated = evaluate_model.partial(data=data).expand(model=trained)
    pick_best(evaluated)


mlopsbench_digits_models()
