"""The W&B adapter end to end: offline runs in this process, read back from their ``.wandb``
log with ``wandb leet inspect``; gate, failures, Ctrl-C, MLflow interop and the preflight."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import PASSING
from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.wandb import adapter, readback
from mlopsbench.usecases.digits import stages as digits_stages
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

Request = Callable[..., RunRequest]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _back(result: RunResult) -> readback.OfflineRun:
    return readback.read_run(result.tool_info["run_folder"])


# ------------------------------------------------------------------------------------------
# a run that passes its gate
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_passed_run_record(passed_run: RunResult) -> None:
    assert passed_run.status == "ok", passed_run.error
    assert passed_run.tool == "wandb" and passed_run.model == "simple"
    assert passed_run.params == PASSING.to_dict()  # read back from the run's config
    assert [h["epoch"] for h in passed_run.history] == [1]
    assert passed_run.gate == {
        "metric": "accuracy",
        "value": passed_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    for key in ("data", "train", "evaluate", "wandb_overhead", "import", "readback"):
        assert passed_run.timings[key] > 0, key
    core = sum(passed_run.timings[k] for k in ("data", "train", "evaluate"))
    assert core + passed_run.timings["wandb_overhead"] <= passed_run.wall_time_s
    info = passed_run.tool_info
    assert info["state"] == "finished" and info["exit_code"] == 0
    assert info["promoted"] is True and "champion" in info["model_aliases"]
    assert "gate-passed" in info["tags"]
    assert info["dataset"]["source"] == "sklearn:load_digits"
    assert info["reader"].startswith("wandb leet inspect")


@pytest.mark.slow
def test_accuracy_equals_plain(passed_run: RunResult, make_request: Request) -> None:
    """The same config through the plain baseline gives the same accuracy (0.8750 here)."""
    from mlopsbench.tools.plain import adapter as plain

    baseline = plain.run(make_request("digits-plain", PASSING))
    assert passed_run.metrics["accuracy"] == baseline.metrics["accuracy"]
    assert passed_run.metrics == baseline.metrics


@pytest.mark.slow
def test_timings_are_the_stages_own_seconds(passed_run: RunResult) -> None:
    """The core's seconds are what the stages returned, as the script stored them in the run."""
    outputs = adapter.stage_outputs(_back(passed_run))
    assert outputs["prepare_data"]["seconds"] == passed_run.timings["data"]
    assert outputs["build_model"]["seconds"] == passed_run.timings["train"]
    assert outputs["evaluate_model"]["seconds"] == passed_run.timings["evaluate"]


@pytest.mark.slow
def test_the_log_holds_the_run(passed_run: RunResult) -> None:
    back = _back(passed_run)
    assert back.config == passed_run.params
    (epoch,) = [row for row in back.history if "train_loss" in row]
    assert epoch["_step"] == 1 and epoch["train_loss"] == passed_run.history[0]["train_loss"]
    assert back.summary["accuracy"] == passed_run.metrics["accuracy"]
    assert back.summary["evaluation"]["gate"]["passed"] is True
    assert back.summary["per_class"]["_type"] == "table-file"
    assert back.summary["per_class"]["nrows"] == 10
    images = {
        k for k, v in back.summary.items() if isinstance(v, dict) and v.get("_type") == "image-file"
    }
    assert images == {"plots/confusion_matrix", "plots/training_curve", "plots/tsne"}
    dataset, model = back.artifact("dataset"), back.artifact("model")
    assert dataset["metadata"]["digest"] == passed_run.tool_info["dataset"]["digest"]
    assert model["metadata"]["dataset"]["digest"] == dataset["digest"]  # model <- dataset
    files = {entry["path"] for entry in model["manifest"]["contents"]}
    assert files == {"model.json", "model.safetensors"}
    assert back.git_commit is None or len(back.git_commit) == 40


@pytest.mark.slow
def test_files_stay_in_the_run_folder(passed_run: RunResult) -> None:
    run_dir = Path(passed_run.artifacts["model"]).parent
    assert Path(passed_run.tool_info["run_folder"]).is_relative_to(run_dir / "wandb")
    for name, path in passed_run.artifacts.items():
        assert Path(path).exists() and Path(path).is_relative_to(run_dir), name
    home = Path.home()
    for leftover in (".local/share/wandb", ".config/wandb", ".cache/wandb", "wandb"):
        assert not (home / leftover).exists(), leftover
    assert not any(name.startswith("WANDB_") for name in os.environ)  # put back after the run


@pytest.mark.slow
def test_evidence_all_true(passed_run: RunResult) -> None:
    found = adapter.evidence(passed_run)
    assert tuple(found) == EVIDENCE_KEYS
    assert all(found.values()), found


@pytest.mark.slow
def test_evidence_notices_a_missing_model_file(passed_run: RunResult, tmp_path: Path) -> None:
    """The model artifact references the core's weights (immutable policy): gone -> False."""
    weights = Path(passed_run.artifacts["model"]) / "model.safetensors"
    kept = tmp_path / "kept.safetensors"
    weights.rename(kept)
    try:
        assert adapter.evidence(passed_run)["model_artifact"] is False
    finally:
        kept.rename(weights)


def test_evidence_of_a_run_without_its_folder(tmp_path: Path) -> None:
    result = RunResult(tool="wandb", usecase="digits", model="simple", params={})
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)
    result.tool_info["run_folder"] = str(tmp_path / "gone")
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)


# ------------------------------------------------------------------------------------------
# the quality gate, failures, Ctrl-C
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gate_failure_is_never_champion(rejected_run: RunResult) -> None:
    assert rejected_run.status == "gate_failed"
    assert rejected_run.error is not None and "quality gate failed" in rejected_run.error
    info = rejected_run.tool_info
    assert info["promoted"] is False
    assert "candidate" in info["model_aliases"] and "champion" not in info["model_aliases"]
    assert "gate-failed" in info["tags"] and info["state"] == "finished"
    assert _back(rejected_run).summary["evaluation"]["gate"]["passed"] is False
    assert all(adapter.evidence(rejected_run).values())


@pytest.mark.slow
def test_crash_mid_training_ends_the_run_failed(
    make_request: Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("simulated crash in epoch 1")

    monkeypatch.setattr(digits_stages, "build_model", crash)
    result = adapter.run(make_request("digits-crash", PASSING))
    assert result.status == "failed"
    assert "simulated crash" in (result.error or "") and "\n" not in (result.error or "")
    back = _back(result)
    assert back.state == "failed" and back.exit_code == 1
    assert back.config["model"] == "simple"  # the config was recorded before training
    assert back.artifact("dataset") and not back.artifact("model")  # no model was logged
    assert "data" in result.timings and "train" not in result.timings
    found = adapter.evidence(result)
    assert found["run_state"] is True and found["model_artifact"] is False


@pytest.mark.slow
def test_user_error_mid_run_raises_one_line_and_ends_failed(
    make_request: Request, tmp_path: Path
) -> None:
    """The file exists (the preflight passes) but is no MNIST npz: the core's loader refuses it
    inside the run; the user reads one line, and the W&B run says it failed."""
    bad = tmp_path / "not-mnist.npz"
    np.savez(bad, something=np.zeros(3))
    cfg = DigitsConfig(model="simple", epochs=1, data=DigitsDataConfig(source="npz", path=str(bad)))
    request = make_request("digits-baddata", cfg)
    with pytest.raises(DataError) as err:
        adapter.run(request)
    assert "\n" not in str(err.value)
    folder = readback.find_run_folder(request.out_dir)
    assert folder is not None and readback.read_run(folder).state == "failed"


@pytest.mark.slow
def test_ctrl_c_propagates_and_the_run_is_not_finished(
    make_request: Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: object, **kwargs: object) -> dict[str, object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_stages, "build_model", interrupt)
    request = make_request("digits-ctrl-c", PASSING)
    with pytest.raises(KeyboardInterrupt):
        adapter.run(request)
    folder = readback.find_run_folder(request.out_dir)
    assert folder is not None
    back = readback.read_run(folder)
    assert back.state == "failed" and back.exit_code not in (None, 0)
    assert not any(name.startswith("WANDB_") for name in os.environ)


# ------------------------------------------------------------------------------------------
# MLflow interop
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.capability("wandb", "mlflow_tracking")
def test_logged_to_mlflow_too(make_request: Request, wb_root: Path) -> None:
    pytest.importorskip("mlflow", reason="MLflow's client comes from its own environment")
    from mlflow import MlflowClient

    uri = f"sqlite:///{wb_root / 'mlflow' / 'mlflow.db'}"
    result = adapter.run(make_request("digits-mlflow", PASSING, tracking_uri=uri))
    assert result.status == "ok", result.error
    logged = result.tool_info["mlflow"]
    assert result.timings["tracking"] == logged["seconds"] > 0
    run = MlflowClient(tracking_uri=uri).get_run(logged["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["wandb.run_id"] == result.tool_info["run_id"]
    assert run.data.metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])


# ------------------------------------------------------------------------------------------
# preflight: bad input fails before any folder or run exists
# ------------------------------------------------------------------------------------------


def test_missing_npz_fails_before_any_run(tmp_path: Path) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    with pytest.raises(DataError, match=r"missing\.npz"):
        adapter.run(RunRequest("digits", cfg, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_unreachable_tracking_server_fails_first(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(RunRequest("digits", PASSING, tmp_path / "run", tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path) -> None:
    request = RunRequest("digits", PASSING, tmp_path / "run", tracking_uri="htp://localhost:5000")
    with pytest.raises(ConfigError, match="scheme"):
        adapter.run(request)
    assert not (tmp_path / "run").exists()
