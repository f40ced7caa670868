"""The digits pipeline end to end: worker, Client read-back, Model Control Plane, MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import DIGITS
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig

pytestmark = pytest.mark.slow

STEPS = ["load_data", "train_model", "evaluate_model", "log_to_mlflow", "promote_if_accurate"]


def test_run_record(digits_run: RunResult) -> None:
    assert digits_run.status == "ok", digits_run.error
    assert digits_run.tool == "zenml" and digits_run.model == "simple"
    assert digits_run.params == DIGITS.to_dict()
    assert 0.5 <= digits_run.metrics["accuracy"] <= 1.0
    assert digits_run.gate == {
        "metric": "accuracy",
        "value": digits_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    assert [h["epoch"] for h in digits_run.history] == [1]
    for key in ("import", "store_init", "data", "train", "evaluate", "tracking", "zenml_overhead"):
        assert digits_run.timings[key] > 0, key
    core = sum(digits_run.timings[k] for k in ("data", "train", "evaluate", "tracking"))
    assert core + digits_run.timings["zenml_overhead"] <= digits_run.wall_time_s + 1e-6


def test_steps_and_overhead_from_zenml_timestamps(digits_run: RunResult) -> None:
    info = digits_run.tool_info
    assert sorted(info["steps"]) == sorted(STEPS)
    assert all(s["status"] == "completed" and s["seconds"] > 0 for s in info["steps"].values())
    train = info["steps"]["train_model"]
    assert train["core_seconds"] == pytest.approx(digits_run.timings["train"], abs=1e-3)
    assert 0 <= train["overhead_s"] < train["seconds"]
    parts = info["overhead"]
    assert {"before_steps_s", "in_steps_s", "between_steps_s", "after_steps_s"} <= set(parts)
    # The breakdown of ZenML's share (MLflow's own seconds left out) adds up to about it.
    ours = sum(parts[k] for k in ("before_steps_s", "in_steps_s", "between_steps_s"))
    ours += parts["after_steps_s"]
    assert ours == pytest.approx(digits_run.timings["zenml_overhead"], abs=2.0)
    assert info["cached_steps"] == []


def test_model_version_promoted_in_the_model_control_plane(digits_run: RunResult) -> None:
    version = digits_run.tool_info["model_version"]
    assert version["model"] == "digits-simple" and version["number"] == 1
    assert version["stage"] == "production"  # the gate passed


def test_files_stay_in_the_run_folder(digits_run: RunResult) -> None:
    run_dir = Path(digits_run.tool_info["zenml_config"]).parent
    assert Path(digits_run.tool_info["zenml_store"]).is_file()
    assert not (run_dir / "tmp").exists()  # ZenML's unpacked artifact copies are gone
    steps = run_dir / "steps" / digits_run.tool_info["run_name"]
    for name in ("model", "data", "history", "metrics", "confusion_matrix", "tsne"):
        assert Path(digits_run.artifacts[name]).is_relative_to(steps), name
    for name in ("zenml_model", "zenml_dataset", "zenml_evaluation_report"):
        assert Path(digits_run.artifacts[name]).is_relative_to(run_dir / "zenml"), name


def test_evidence_is_read_back_from_zenml(digits_evidence: dict[str, bool]) -> None:
    assert digits_evidence == dict.fromkeys(EVIDENCE_KEYS, True)


@pytest.mark.capability("zenml", "mlflow_tracking")
def test_mlflow_run_logged_from_the_last_step(digits_run: RunResult, mlflow_uri: str) -> None:
    logged = digits_run.tool_info["mlflow"]
    assert logged["run_id"] and logged["model_uri"]
    assert Path(mlflow_uri.removeprefix("sqlite:///")).is_file()


def test_accuracy_equals_plain(
    digits_run: RunResult, make_request: Callable[..., RunRequest]
) -> None:
    from mlopsbench.tools.plain import adapter as plain

    baseline = plain.run(make_request("digits-plain", DIGITS))
    assert digits_run.metrics["accuracy"] == baseline.metrics["accuracy"]


def test_gate_failure_through_the_cli(tmp_path: Path) -> None:
    """Below the threshold: exit 3 with one line, the run recorded as completed, its model
    version never promoted."""
    cfg = DigitsConfig(model="simple", epochs=1, threshold=1.0)
    argv = ["run", "digits", "--tool", "zenml", "--model", cfg.model, "--epochs", "1"]
    argv += ["--threshold", "1.0", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", *argv], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "quality gate failed" in done.stderr and "Traceback" not in done.stderr
    (record,) = tmp_path.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["status"] == "gate_failed"
    assert result["tool_info"]["state"] == "completed"
    assert result["tool_info"]["model_version"]["stage"] is None


def test_failed_step_is_one_line_and_recorded(
    fail_stage: Callable[[str], None], make_request: Callable[..., RunRequest]
) -> None:
    from mlopsbench.tools.zenml import adapter

    fail_stage("mlopsbench.usecases.digits.stages:train_model")
    result = adapter.run(make_request("digits-failed", DIGITS))
    assert result.status == "failed"
    assert result.error is not None and "\n" not in result.error
    assert "failed in step train_model: RuntimeError: injected failure in train_model" in (
        result.error
    )
    steps = result.tool_info["steps"]
    assert steps["load_data"]["status"] == "completed"
    assert steps["train_model"]["status"] == "failed"
    assert "evaluate_model" not in steps  # never started
    assert result.timings["data"] > 0 and "train" not in result.timings
    evidence = adapter.evidence(result)
    assert evidence["run_state"] and evidence["params"] and not evidence["model_artifact"]
