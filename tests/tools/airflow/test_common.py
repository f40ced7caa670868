"""The adapter's shared pieces: the isolated environment, DAG ids, the worker call (no Airflow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsbench.errors import MlopsbenchError
from mlopsbench.tools.airflow import common
from mlopsbench.tools.airflow.pipeline import alerts, dag_support
from mlopsbench.usecases.registry import all_usecases


def test_airflow_env_isolates_home_db_and_dags(tmp_path: Path) -> None:
    env = common.airflow_env(
        tmp_path / "h", artifact_root=tmp_path / "a", alerts_log=tmp_path / "x.jsonl",
        base={"PATH": "/bin"},
    )  # fmt: skip
    assert env["AIRFLOW_HOME"] == str((tmp_path / "h").resolve())
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == f"sqlite:///{(tmp_path / 'h').resolve()}/airflow.db"
    )
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(common.DAGS_FOLDER)
    assert env[dag_support.ENV_ARTIFACT_ROOT] == str((tmp_path / "a").resolve())
    assert env[alerts.ENV_ALERT_LOG] == str((tmp_path / "x.jsonl").resolve())
    assert env["PATH"] == "/bin"
    bare = common.airflow_env(tmp_path / "h", base={})
    assert dag_support.ENV_ARTIFACT_ROOT not in bare and alerts.ENV_ALERT_LOG not in bare


def test_every_use_case_has_its_dag_file() -> None:
    # The adapter finds a use case's DAG by convention: pipeline/mlopsbench_<usecase>.py.
    for usecase in all_usecases():
        dag_id = common.dag_id(usecase.name)
        source = (common.DAGS_FOLDER / f"{dag_id}.py").read_text()
        assert f'dag_id="{dag_id}"' in source
    assert common.all_dag_ids() == ("mlopsbench_digits", "mlopsbench_sentiment")


def test_a_worker_without_result_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "WORKER_MODULE", "mlopsbench_no_such_worker")
    with pytest.raises(MlopsbenchError, match="without a result") as raised:
        common.run_worker("run", {}, {}, tmp_path, tmp_path / "w.log", timeout_s=60)
    assert "No module named mlopsbench_no_such_worker" in str(raised.value)
    assert "\n" not in str(raised.value)
