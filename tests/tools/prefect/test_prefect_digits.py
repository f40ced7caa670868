"""The digits flow end to end: a temporary Prefect API, persisted results, artifacts, the read
back through Prefect's client, MLflow interop, the quality gate, retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.prefect import adapter
from mlopsbench.usecases.digits.config import DigitsConfig

pytestmark = pytest.mark.slow

TASKS = ["prepare_data", "build_model", "evaluate_model", "quality_gate", "promote_model"]
TRAIN_STAGE = "mlopsbench.usecases.digits.stages:train_model"


def test_run_record(digits_run: RunResult) -> None:
    assert digits_run.status == "ok", digits_run.error
    assert digits_run.tool == "prefect" and digits_run.model == "simple"
    assert digits_run.params["epochs"] == 1 and digits_run.params["model"] == "simple"
    assert 0.5 <= digits_run.metrics["accuracy"] <= 1.0
    assert digits_run.gate == {
        "metric": "accuracy",
        "value": digits_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    assert [h["epoch"] for h in digits_run.history] == [1]
    for key in ("import", "api_start", "data", "train", "evaluate", "prefect_overhead"):
        assert digits_run.timings[key] > 0, key
    # The core seconds are what the stages reported (persisted task results); the rest of the
    # flow call is Prefect's (MLflow logging reported on its own).
    inner = sum(
        digits_run.timings.get(k, 0.0)
        for k in ("data", "train", "evaluate", "tracking", "prefect_overhead", "api_start")
    )
    assert inner <= digits_run.wall_time_s + 1e-6
    info = digits_run.tool_info
    assert info["flow"] == "digits" and info["state"] == "Completed"
    assert (
        list(info["task_states"])
        == TASKS[:3] + ["log_to_mlflow"] * bool(info.get("mlflow")) + TASKS[3:]
    )
    assert set(info["task_states"].values()) == {"COMPLETED"}
    assert info["promoted"] is True and info["server_api_url"] is None
    assert info["dataset"]["source"] == "sklearn:load_digits"


def test_files_stay_in_the_run_folder(digits_run: RunResult) -> None:
    run_dir = Path(digits_run.tool_info["run_dir"])
    files = Path(digits_run.tool_info["files"])
    assert files == run_dir / "flow-runs" / digits_run.tool_info["flow_run_id"]
    assert (run_dir / "prefect_home" / "prefect.db").is_file()  # the temporary API's database
    assert any((run_dir / "results").iterdir())  # persisted task results
    for name in ("model", "data", "history", "metrics", "confusion_matrix", "tsne"):
        assert Path(digits_run.artifacts[name]).is_relative_to(files), name
    # The caller's Prefect home was never used by the run.
    assert not (Path(os.environ["PREFECT_HOME"]) / "prefect.db").exists()


def test_evidence_is_read_back_through_prefect(
    digits_run: RunResult, digits_evidence: dict[str, bool]
) -> None:
    assert digits_evidence == dict.fromkeys(EVIDENCE_KEYS, True)
    record = adapter.read_back(digits_run)
    assert record is not None
    # Each task's persisted result is what its core stage returned, with the stage's seconds.
    assert record.result_of("build_model")["seconds"] == digits_run.timings["train"]
    assert record.result_of("evaluate_model")["metrics"] == digits_run.metrics
    assert record.parameters["config"] == digits_run.params
    assert "stage_seconds" not in record.result_of("build_model")


def test_artifacts_are_keyed_per_model(digits_run: RunResult) -> None:
    keys = digits_run.tool_info["artifact_keys"]
    assert keys == sorted(
        [
            "digits-simple",  # the promoted model (link)
            "digits-simple-evaluation",
            "digits-simple-evaluation-confusion-matrix",
            "digits-simple-evaluation-training-curve",
            "digits-simple-evaluation-tsne",
            "digits-simple-history",
        ]
    )


@pytest.mark.capability("prefect", "mlflow_tracking")
def test_the_flow_also_logs_to_mlflow(digits_run: RunResult, mlflow_uri: str | None) -> None:
    if mlflow_uri is None:
        pytest.skip("MLflow's client is not importable here (scripts/run_tests.py adds it)")
    import mlflow

    tracked = digits_run.tool_info["mlflow"]
    assert digits_run.timings["tracking"] > 0
    run = mlflow.MlflowClient(mlflow_uri).get_run(tracked["run_id"])
    assert run.data.metrics["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])
    assert run.data.tags["prefect.flow_run_id"] == digits_run.tool_info["flow_run_id"]


def test_gate_failure_through_the_cli_matches_plain(tmp_path: Path) -> None:
    """The issue's check: the same config gives plain's accuracy; below the gate the CLI exits
    3, the flow run is Failed with the gate's message and the model is not promoted."""
    from mlopsbench.tools.plain import adapter as plain

    args = ["--model", "simple", "--epochs", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "run", "digits", "--tool", "prefect", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "quality gate failed: accuracy 0.8750 < 0.9000" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (result_json,) = (tmp_path / "runs").glob("digits-prefect-*/result.json")
    result = json.loads(result_json.read_text())
    baseline = plain.run(
        RunRequest("digits", DigitsConfig(model="simple", epochs=1), tmp_path / "plain")
    )
    assert result["metrics"]["accuracy"] == baseline.metrics["accuracy"] == 0.875
    info = result["tool_info"]
    assert result["status"] == "gate_failed" and info["state"] == "Failed"
    assert "quality gate FAILED: accuracy 0.8750" in info["state_message"]
    assert info["task_states"]["quality_gate"] == "FAILED"
    assert "promote_model" not in info["task_states"] and info["promoted"] is False
    assert "digits-simple" not in info["artifact_keys"]


def test_a_transient_failure_in_training_is_retried(
    make_request: Callable[..., RunRequest],
    fail_stage: Callable[..., None],
    small_digits: DigitsConfig,
) -> None:
    fail_stage(TRAIN_STAGE, "RuntimeError", once=True)
    result = adapter.run(make_request("digits-retried", small_digits))
    assert result.status == "ok", result.error
    assert result.tool_info["task_run_counts"]["build_model"] == 2  # failed once, then passed
    assert result.tool_info["task_run_counts"]["prepare_data"] == 1


def test_bad_input_is_not_retried(
    make_request: Callable[..., RunRequest],
    fail_stage: Callable[..., None],
    small_digits: DigitsConfig,
) -> None:
    fail_stage(TRAIN_STAGE, "DataError")
    result = adapter.run(make_request("digits-bad-input", small_digits))
    assert result.status == "failed"
    assert result.error is not None and "\n" not in result.error
    assert "in task build_model failed" in result.error
    assert "DataError: injected failure in train_model" in result.error
    assert result.tool_info["task_run_counts"]["build_model"] == 1
    assert result.tool_info["task_states"]["build_model"] == "FAILED"
    assert adapter.evidence(result)["run_state"] is True  # Prefect shows it Failed
