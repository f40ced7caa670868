"""The DAG files as Airflow parses them (DagBag in a child process), and the worker's checks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import DataError
from mlopsbench.result import RunRequest
from mlopsbench.tools.airflow import adapter, common
from mlopsbench.tools.airflow.pipeline import dag_support
from mlopsbench.usecases.common.params import config_params
from mlopsbench.usecases.registry import get_usecase

Worker = Callable[..., tuple[int, dict[str, Any], Path]]

# Task ids are the core's uniform stage names: the adapter reads each stage's XCom by them.
CORE_TASKS = ["prepare_data", "build_model", "evaluate_model"]


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory, airflow_worker: Worker) -> dict[str, Any]:
    code, result, _ = airflow_worker(tmp_path_factory.mktemp("inspect"), "inspect")
    assert code == 0, result
    return result


def test_dag_bag_loads_every_dag_file_without_import_errors(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    assert sorted(parsed["dags"]) == sorted(common.served_dag_ids())
    # The helper modules next to the DAG files are not parsed as DAG files (.airflowignore).
    assert parsed["parsed_files"] == sorted(f"{dag_id}.py" for dag_id in common.served_dag_ids())
    # Parsing must stay cheap: the core (torch, sklearn, matplotlib) loads inside tasks only.
    assert parsed["heavy_modules_loaded"] == []


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_dag_shape(parsed: dict[str, Any], usecase: str) -> None:
    dag = parsed["dags"][common.dag_id(usecase)]
    first, second, evaluate = CORE_TASKS
    assert dag["tasks"] == sorted([first, second, evaluate, "quality_gate", "log_to_mlflow"])
    assert second in dag["downstream"][first]
    assert evaluate in dag["downstream"][second]
    assert dag["downstream"][evaluate] == ["log_to_mlflow", "quality_gate"]
    assert dag["schedule"] is None and dag["timetable"] is None and dag["catchup"] is False
    assert dag["retries"] == dag_support.DEFAULT_RETRIES
    assert dag["retry_delay_s"] == dag_support.DEFAULT_RETRY_DELAY_S
    assert dag["task_failure_callback"].endswith("alerts.on_task_failure")
    assert dag["dag_success_callback"].endswith("alerts.on_dag_success")
    assert dag["dag_failure_callback"].endswith("alerts.on_dag_failure")
    # One param per core setting, with the config's default, plus the tool params (unset).
    specs = config_params(get_usecase(usecase).config_class)
    defaults = {spec.name: spec.default for spec in specs}
    assert dag["params"] == {**defaults, **dict.fromkeys(dag_support.TOOL_PARAMS)}


def test_models_dag_maps_training_and_evaluation_over_the_models(parsed: dict[str, Any]) -> None:
    """The digits models side by side: one dataset, then one mapped task instance per model
    for training and for evaluation, then the best one through the gate."""
    dag = parsed["dags"][common.MODELS_DAG_ID]
    assert dag["tasks"] == sorted(
        ["prepare_data", "models_to_train", "build_model", "evaluate_model", "pick_best"]
    )
    assert dag["downstream"]["prepare_data"] == ["build_model", "evaluate_model"]
    assert dag["downstream"]["models_to_train"] == ["build_model"]
    assert dag["downstream"]["build_model"] == ["evaluate_model"]
    assert dag["downstream"]["evaluate_model"] == ["pick_best"]
    assert dag["mapped"] == ["build_model", "evaluate_model"]
    # Its params: the core config's settings (as in mlopsbench_digits) plus the models, whose
    # choices and default are the config's model choices.
    digits = parsed["dags"][common.dag_id("digits")]["params"]
    assert dag["params"] == {**digits, "models": ["simple", "deep", "cnn"]}
    assert dag["retries"] == dag_support.DEFAULT_RETRIES


def test_sweep_dag_maps_the_trials_and_gates_the_promotion(parsed: dict[str, Any]) -> None:
    """The sweep: one mapped run_trial instance per planned trial, the fan-in, the best trial
    evaluated, a short-circuit gate in front of the promotion."""
    dag = parsed["dags"][common.SWEEP_DAG_ID]
    assert dag["mapped"] == ["run_trial"]
    assert dag["downstream"]["plan_trials"] == ["run_trial"]
    assert dag["downstream"]["prepare_data"] == ["evaluate_best", "run_trial"]
    assert dag["downstream"]["run_trial"] == ["select_best"]
    assert dag["downstream"]["evaluate_best"] == ["quality_gate"]
    assert dag["downstream"]["quality_gate"] == ["promote_best"]
    # Its params are the sweep config's settings (defaults included) plus the tool params.
    defaults = {
        spec.name: spec.default for spec in config_params(get_usecase("sweep").config_class)
    }
    assert dag["params"] == {**defaults, **dict.fromkeys(dag_support.TOOL_PARAMS)}
    assert dag["params"]["trials"] == 8 and dag["retries"] == dag_support.DEFAULT_RETRIES


@pytest.mark.capability("airflow", "schedule")
def test_cron_schedule_and_retries_come_from_the_environment(
    tmp_path: Path, airflow_worker: Worker
) -> None:
    env = {
        dag_support.ENV_SCHEDULE: "0 3 * * *",
        dag_support.ENV_RETRIES: "4",
        dag_support.ENV_RETRY_DELAY: "5",
    }
    code, result, _ = airflow_worker(tmp_path, "inspect", extra_env=env)
    assert code == 0, result
    assert set(result["dags"]) == set(common.served_dag_ids())
    for dag in result["dags"].values():
        assert "0 3 * * *" in dag["schedule"]
        # The timetable the scheduler gets (the serialized DAG): Airflow parsed the cron.
        assert dag["timetable"] == {
            "class": "CronTriggerTimetable", "summary": "0 3 * * *", "description": "At 03:00"
        }  # fmt: skip
        assert (dag["retries"], dag["retry_delay_s"]) == (4, 5.0)


def test_import_errors_are_reported_in_one_line(tmp_path: Path, airflow_worker: Worker) -> None:
    folder = tmp_path / "dags"
    shutil.copytree(common.DAGS_FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "broken.py").write_text(
        "from airflow.sdk import dag\nimport mlopsbench_no_such_module  # a dag that cannot load\n"
    )
    bad_env = {dag_support.ENV_RETRIES: "many"}  # our own DAG files reject it at parse time
    code, result, _ = airflow_worker(tmp_path, "inspect", dags_folder=folder, extra_env=bad_env)
    assert code == 0
    errors = {Path(path).name: error for path, error in result["import_errors"].items()}
    assert sorted(errors) == [
        "broken.py",
        "mlopsbench_digits.py",
        "mlopsbench_digits_models.py",
        "mlopsbench_sentiment.py",
        "mlopsbench_sweep.py",
    ]
    assert "mlopsbench_no_such_module" in errors["broken.py"]
    assert (
        "MLOPSBENCH_AIRFLOW_RETRIES must be a number >= 0, got 'many'"
        in errors["mlopsbench_digits.py"]
    )
    code, result, _ = airflow_worker(
        tmp_path, "run", {"dag_id": "mlopsbench_digits", "conf": {}},
        dags_folder=folder, extra_env=bad_env,
    )  # fmt: skip
    assert code == 2 and result["error_type"] == "DagImportError"
    assert "failed to import" in result["error"] and "\n" not in result["error"]


@pytest.mark.capability("airflow", "typed_parameters")
def test_bad_params_fail_before_any_run(tmp_path: Path, airflow_worker: Worker) -> None:
    # Airflow checks values against the params' JSON schema (types, choices); unknown keys
    # (which Airflow would accept silently) are caught by the worker. Both are reported at once,
    # before any DB work. Value ranges are the core config's to check, in the first task.
    conf = {"epochs": "many", "epoch": 3, "model": "simple"}
    code, result, home = airflow_worker(
        tmp_path, "run", {"dag_id": "mlopsbench_digits", "conf": conf, "migrate": True}
    )
    assert code == 2 and result["error_type"] == "ConfigError"
    assert result["error"] == (
        "unknown param(s) for DAG mlopsbench_digits: epoch; "
        "Invalid input for param epochs: 'many' is not of type 'integer'"
    )
    assert not (home / "airflow.db").exists() or (home / "airflow.db").stat().st_size == 0


def test_uninitialised_db_is_one_line_error(tmp_path: Path) -> None:
    request = RunRequest(
        usecase="digits",
        config=get_usecase("digits").config({"model": "simple", "epochs": 1}),
        out_dir=tmp_path / "run",
        options={"airflow_home": str(tmp_path / "empty_home")},  # reuse a home never migrated
    )
    with pytest.raises(DataError, match=r"not initialised: run `airflow db migrate`") as caught:
        adapter.run(request)
    assert "\n" not in str(caught.value)
