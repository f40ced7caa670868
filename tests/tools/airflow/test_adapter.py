"""End-to-end: the real DAGs through ``dag.test()`` in an isolated home, read back from the DB."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.airflow import adapter, metadata
from mlopsbench.tools.airflow.pipeline import alerts, dag_support
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

Worker = Callable[..., tuple[int, dict[str, Any], Path]]

# Small and quick: SimpleNN, one epoch, 180 test images (t-SNE cost grows with them).
QUICK_DATA = DigitsDataConfig(test_fraction=0.1)

FLAKY_DAG = '''
"""A one-task DAG that fails on its first two tries (a counter file) and succeeds on the third,
retried with exponential back-off (the delay times 4 per retry, jittered by Airflow)."""
from pathlib import Path

from airflow.sdk import dag, task

from mlopsbench.tools.airflow.pipeline import alerts
from mlopsbench.tools.airflow.pipeline import dag_support as support


@dag(dag_id="flaky", schedule=None, start_date=support.START_DATE,
     default_args={"retries": support.retries_from_env(),
                   "retry_delay": support.retry_delay_from_env(),
                   "retry_exponential_backoff": 4.0},
     on_success_callback=alerts.on_dag_success)
def flaky():
    @task
    def fails_twice(counter: str = "COUNTER") -> int:
        path = Path(counter)
        tries = int(path.read_text()) if path.exists() else 0
        path.write_text(str(tries + 1))
        if tries < 2:
            raise RuntimeError("transient failure")
        return 42

    fails_twice()


flaky()
'''


def _digits(out: Path, threshold: float, **options: str) -> RunResult:
    config = DigitsConfig(model="simple", epochs=1, threshold=threshold, data=QUICK_DATA)
    request = RunRequest(usecase="digits", config=config, out_dir=out, options=options)
    return adapter.run(request)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.capability("airflow", "mlflow_tracking")
def test_digits_dag_run_is_read_back_and_logged_to_mlflow(
    tmp_path: Path, webhook, quiet_threads: None
) -> None:
    mlflow_db = tmp_path / "mlflow" / "mlflow.db"
    config = DigitsConfig(model="simple", epochs=1, threshold=0.5, data=QUICK_DATA)
    request = RunRequest(
        usecase="digits", config=config, out_dir=tmp_path / "run",
        tracking_uri=f"sqlite:///{mlflow_db}", options={"alert_webhook": webhook.url},
    )  # fmt: skip
    result = adapter.run(request)

    assert result.status == "ok", result.error
    assert result.tool == "airflow" and result.model == "simple"
    assert result.metrics["accuracy"] >= 0.5 and result.gate and result.gate["passed"]
    assert len(result.history) == 1 and result.params == config.to_dict()
    info = result.tool_info
    assert info["state"] == "success"
    assert set(info["task_states"].values()) == {"success"}  # log_to_mlflow ran too
    for stage in ("import", "dag_parse", "db_migrate", "data", "train", "evaluate", "tracking",
                  "dag_test_overhead", "worker_start", "worker_exit", "readback"):  # fmt: skip
        assert result.timings[stage] >= 0.0, stage
    assert info["dag_test_setup_s"] > 0 and set(info["task_overhead_s"]) >= {"build_model"}
    # The core stages' seconds come back from their XComs (what each stage returned).
    assert {"data", "train", "evaluate"} <= set(result.timings)
    assert adapter.evidence(result) == dict.fromkeys(
        ("params", "per_epoch_metrics", "final_metrics", "model_artifact", "plots", "lineage",
         "run_state"), True,
    )  # fmt: skip

    # Files live under <out>/artifacts/<dag_id>/<run_id>/, XCom only points at them.
    folder = dag_support.run_folder(tmp_path / "run" / "artifacts", info["dag_id"], info["run_id"])
    assert Path(info["artifact_dir"]) == folder
    assert Path(result.artifacts["model"]).parent == folder
    assert (folder / "confusion_matrix.png").is_file()
    stored = metadata.read_run(info["airflow_home"], info["dag_id"], info["run_id"])
    assert len(json.dumps(stored.xcom)) < 20_000  # small JSON, never arrays or models
    assert "secret-token" not in json.dumps(stored.conf)  # the webhook URL is not in the run conf

    [post] = webhook.received
    assert post["details"]["event"] == "dag_succeeded"
    assert f"accuracy {result.metrics['accuracy']:.4f}" in post["text"]

    # The shared tracking helper recorded the run in MLflow, tagged with the Airflow run.
    with sqlite3.connect(mlflow_db) as db:
        status = db.execute(
            "SELECT status FROM runs WHERE run_uuid = ?", (info["mlflow"]["run_id"],)
        ).fetchone()
        tag = db.execute(
            "SELECT value FROM tags WHERE run_uuid = ? AND key = 'airflow.run_id'",
            (info["mlflow"]["run_id"],),
        ).fetchone()
    assert status == ("FINISHED",) and tag == (info["run_id"],)
    assert RunResult.from_dict(json.loads(json.dumps(result.to_dict()))).status == "ok"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_gate_failure_fails_the_run_and_alerts(
    tmp_path: Path, webhook, quiet_threads: None
) -> None:
    result = _digits(tmp_path / "run", threshold=0.999, alert_webhook=webhook.url)

    assert result.status == "gate_failed"
    assert result.error and result.error.startswith("quality gate failed: accuracy")
    states = result.tool_info["task_states"]
    assert states["quality_gate"] == "failed" and states["log_to_mlflow"] == "skipped"
    assert result.tool_info["state"] == "failed"
    assert webhook.events() == ["task_failed", "dag_failed"]
    failed = webhook.received[0]["details"]
    assert failed["task_id"] == "quality_gate" and failed["try_number"] == 1  # no retry
    assert failed["error"].startswith("quality gate FAILED: accuracy")  # the gate task's error
    assert adapter.evidence(result)["run_state"] is True
    assert metadata.read_alerts(tmp_path / "run" / "alerts.jsonl")[0]["details"] == failed


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_task_crash_through_the_cli_is_one_line_and_alerts(tmp_path: Path, webhook) -> None:
    env = {**_env(), alerts.ENV_ALERT_WEBHOOK: webhook.url}
    # A file that exists but is no npz: a missing one is refused before the DAG runs.
    (tmp_path / "broken.npz").write_text("not an npz archive")
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "run", "digits", "--tool", "airflow",
         "--model", "simple", "--epochs", "1", "--data", "npz",
         "--data-path", str(tmp_path / "broken.npz"), "--out", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: task prepare_data failed:"), done.stderr
    assert "broken.npz" in lines[0] and "Traceback" not in done.stderr
    [record_path] = (tmp_path / "runs").glob("digits-airflow-*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "failed" and record["tool_info"]["state"] == "failed"
    assert record["tool_info"]["task_states"]["build_model"] == "upstream_failed"
    assert webhook.events() == ["task_failed", "dag_failed"]
    assert webhook.received[0]["details"]["try_number"] == 1  # a user error is not retried


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.capability("airflow", "retries_backoff")
def test_task_fails_twice_and_succeeds_after_backed_off_retries(
    tmp_path: Path, airflow_worker: Worker
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    counter = tmp_path / "tries"
    (dags / "flaky.py").write_text(FLAKY_DAG.replace("COUNTER", str(counter)))
    code, worker, home = airflow_worker(
        tmp_path, "run", {"dag_id": "flaky", "conf": {}, "migrate": True},
        dags_folder=dags,
        extra_env={dag_support.ENV_RETRIES: "2", dag_support.ENV_RETRY_DELAY: "1"},
    )  # fmt: skip
    assert code == 0, worker
    assert worker["state"] == "success" and counter.read_text() == "3"
    record = metadata.read_run(home, "flaky", worker["run_id"])
    task = record.tasks["fails_twice"]
    assert (task.state, task.try_number, task.max_tries) == ("success", 3, 2)
    assert record.xcom["fails_twice"] == 42
    # Airflow kept the failed tries; the pauses between them grew: the first retry waited
    # 1-2 s (the delay, jittered), the second at least 4 s (the delay times 4).
    first, second = task.tries
    assert (first["state"], second["state"]) == ("failed", "failed"), task.tries
    pauses = [second["start"] - first["end"], task.start - second["end"]]
    assert pauses[0] >= 1.0 and pauses[1] >= 4.0 and pauses[1] > pauses[0], pauses
    events = [a["details"]["event"] for a in metadata.read_alerts(tmp_path / "alerts.jsonl")]
    assert events == ["dag_succeeded"]  # the failed tries are no alert: they were retried


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sentiment_smoke_dag_runs_offline(tmp_path: Path, quiet_threads: None) -> None:
    # The tiny offline DistilBERT, one epoch on few reviews: this checks the wiring, not the model.
    config = SentimentConfig(smoke=True, fine_tune_epochs=1, sample_size=10, threshold=0.0)
    result = adapter.run(RunRequest(usecase="sentiment", config=config, out_dir=tmp_path / "run"))

    assert result.status == "ok", result.error
    assert result.model == "tiny-distilbert" and result.params == config.to_dict()
    assert "fixture" in str(result.tool_info["dataset"]["source"])
    assert set(result.tool_info["task_states"]) == {
        "prepare_data", "build_model", "evaluate_model", "quality_gate", "log_to_mlflow"
    }  # fmt: skip
    assert result.tool_info["task_states"]["log_to_mlflow"] == "skipped"
    assert {"data", "model", "evaluate", "dag_test_overhead"} <= set(result.timings)
    assert len(result.history) == 1 and 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.tool_info["dataset"]["digest"]
    assert adapter.evidence(result) == dict.fromkeys(
        ("params", "per_epoch_metrics", "final_metrics", "model_artifact", "plots", "lineage",
         "run_state"), True,
    )  # fmt: skip


def test_evidence_is_false_without_a_metadata_db(tmp_path: Path) -> None:
    result = RunResult(
        tool="airflow", usecase="digits", model="simple", params={},
        tool_info={"airflow_home": str(tmp_path / "nope"), "dag_id": "d", "run_id": "r"},
    )  # fmt: skip
    assert set(adapter.evidence(result).values()) == {False}


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}
