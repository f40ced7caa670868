"""The digits job end to end: in-process materialisation, read-back from the instance, the
quality gate as a blocking asset check, MLflow interop, and a failing step."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.dagster import adapter, instance, readback
from mlopsbench.tools.dagster.pipeline.definitions import defs
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

pytestmark = pytest.mark.slow

ALL_TRUE = dict.fromkeys(
    (
        "params",
        "per_epoch_metrics",
        "final_metrics",
        "model_artifact",
        "plots",
        "lineage",
        "run_state",
    ),
    True,
)


def _read(result: RunResult) -> readback.RunBack:
    with instance.open_instance(Path(result.tool_info["dagster_home"])) as opened:
        return readback.read_run(opened, result.tool_info["run_id"])


def test_run_record(digits_run: RunResult) -> None:
    assert digits_run.status == "ok", digits_run.error
    assert digits_run.tool == "dagster" and digits_run.model == "simple"
    assert digits_run.params["epochs"] == 1 and digits_run.params["model"] == "simple"
    assert 0.5 <= digits_run.metrics["accuracy"] <= 1.0
    assert digits_run.gate == {
        "metric": "accuracy",
        "value": digits_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    assert [h["epoch"] for h in digits_run.history] == [1]
    for key in ("data", "train", "evaluate", "tracking", "dagster_overhead", "import", "readback"):
        assert digits_run.timings[key] > 0, key
    core = sum(digits_run.timings[k] for k in ("data", "train", "evaluate", "tracking"))
    assert core + digits_run.timings["dagster_overhead"] <= digits_run.wall_time_s + 1e-6
    parts = digits_run.tool_info["overhead"]
    assert set(parts) == {"launch_s", "in_steps_s", "between_steps_s", "after_s"}
    steps = digits_run.tool_info["steps"]
    assert steps["digits_model"]["core_seconds"] == pytest.approx(
        digits_run.timings["train"], abs=1e-3
    )
    assert all(step["status"] == "SUCCESS" for step in steps.values())
    assert digits_run.tool_info["dataset"]["source"] == "sklearn:load_digits"
    assert digits_run.tool_info["data_version"] == digits_run.tool_info["dataset"]["digest"]
    assert digits_run.tool_info["dagster_status"] == "SUCCESS"
    assert digits_run.tool_info["checks"]["digits_quality_gate"]["passed"] is True


def test_files_stay_in_the_instance_home(digits_run: RunResult) -> None:
    home = Path(digits_run.tool_info["dagster_home"])
    assert home == Path(digits_run.artifacts["dagster_home"])
    assert (home / "dagster.yaml").read_text().startswith("telemetry:\n  enabled: false")
    for name in ("model", "data", "history", "metrics", "evaluation", "confusion_matrix", "tsne"):
        path = Path(digits_run.artifacts[name])
        assert path.exists(), name
        assert path.is_relative_to(home / "artifacts"), name
        assert digits_run.tool_info["run_id"] in path.parts, name  # each run its own folder


def test_instance_read_back(digits_run: RunResult) -> None:
    """Each asset's metadata is what its core stage returned, seconds included; the stored
    values (the IO manager's) are the same dicts; the run config holds the settings."""
    back = _read(digits_run)
    assert back.status == "SUCCESS" and back.job_name == "digits_pipeline"
    assert set(back.materialised) == {
        "digits_data",
        "digits_model",
        "digits_evaluation",
        "digits_champion",
        "digits_mlflow_run",
    }
    assert back.materialised["digits_model"]["seconds"] == digits_run.timings["train"]
    assert back.materialised["digits_evaluation"]["metrics"] == digits_run.metrics
    assert back.materialised["digits_evaluation"]["accuracy"] == digits_run.metrics["accuracy"]
    settings = back.run_config["resources"]["digits_settings"]["config"]
    assert DigitsConfig.from_dict(settings).to_dict() == digits_run.params
    with instance.open_instance(Path(digits_run.tool_info["dagster_home"])) as opened:
        stored = defs.load_asset_value("digits_model", instance=opened)
    assert stored["model_dir"] == digits_run.artifacts["model"]
    assert stored["seconds"] == digits_run.timings["train"]


def test_the_champion_is_the_model_that_passed(digits_run: RunResult) -> None:
    champion = digits_run.tool_info["champion"]
    assert champion["model_dir"] == digits_run.artifacts["model"]
    assert champion["accuracy"] == digits_run.metrics["accuracy"]


def test_evidence(digits_run: RunResult) -> None:
    assert adapter.evidence(digits_run) == ALL_TRUE


@pytest.mark.capability("dagster", "mlflow_tracking")
def test_logged_to_mlflow(digits_run: RunResult, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    info = digits_run.tool_info["mlflow"]
    assert info["run_id"] and info["model_uri"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlopsbench.tool"] == "dagster"
    assert run.data.tags["dagster.run_id"] == digits_run.tool_info["run_id"]
    assert run.data.params["epochs"] == "1"
    assert run.data.metrics["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])
    assert run.inputs.dataset_inputs[0].dataset.digest == digits_run.tool_info["dataset"]["digest"]


def test_a_failed_gate_promotes_nothing(gate_failed_run: RunResult) -> None:
    """The blocking check fails: the run is FAILURE in Dagster, nothing downstream of the
    evaluation materialised, and the record says gate_failed."""
    assert gate_failed_run.status == "gate_failed", gate_failed_run.error
    assert gate_failed_run.error and gate_failed_run.error.startswith("quality gate failed")
    info = gate_failed_run.tool_info
    assert info["dagster_status"] == "FAILURE"
    assert info["champion"] is None and info["mlflow"] == {}
    assert info["materialised"] == ["digits_data", "digits_evaluation", "digits_model"]
    check = info["checks"]["digits_quality_gate"]
    assert check["passed"] is False and check["severity"] == "ERROR"
    assert check["metadata"]["threshold"] == 1.0
    assert "tracking" not in gate_failed_run.timings
    assert adapter.evidence(gate_failed_run) == ALL_TRUE


def test_a_failing_step_is_a_one_line_failure(
    make_request: Callable[..., RunRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A core stage that raises fails its step; the record names the step and the error."""
    from mlopsbench.usecases.digits import stages

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("injected failure in train_model")

    monkeypatch.setattr(stages, "train_model", broken)
    cfg = DigitsConfig(model="simple", epochs=1, data=DigitsDataConfig(test_fraction=0.1))
    result = adapter.run(make_request("digits-broken", cfg))
    assert result.status == "failed"
    assert result.error is not None and "\n" not in result.error
    assert result.error.endswith(
        "failed in step digits_model: RuntimeError: injected failure in train_model"
    )
    assert result.tool_info["materialised"] == ["digits_data"]
    assert result.timings["data"] > 0 and "train" not in result.timings
    found = adapter.evidence(result)
    assert found["run_state"] and found["lineage"] is False and found["final_metrics"] is False
    json.dumps(result.to_dict())
