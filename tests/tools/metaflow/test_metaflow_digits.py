"""DigitsFlow end to end: Runner API, Client API read-back, card HTML, MLflow interop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsbench.result import RunResult
from mlopsbench.tools.metaflow import adapter, launch, readback
from mlopsbench.usecases.digits.config import DigitsConfig

pytestmark = pytest.mark.slow


def _open_run(result: RunResult):  # type: ignore[no-untyped-def]
    return readback.open_run(result.tool_info["pathspec"], Path(result.tool_info["run_dir"]))


def test_run_record(digits_run: RunResult) -> None:
    assert digits_run.status == "ok", digits_run.error
    assert digits_run.tool == "metaflow" and digits_run.model == "simple"
    assert digits_run.params["epochs"] == 1 and digits_run.params["model"] == "simple"
    assert 0.5 <= digits_run.metrics["accuracy"] <= 1.0
    assert digits_run.gate == {
        "metric": "accuracy",
        "value": digits_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    assert [h["epoch"] for h in digits_run.history] == [1]
    for key in ("data", "train", "evaluate", "metaflow_overhead", "readback", "card_export"):
        assert digits_run.timings[key] > 0, key
    # Core seconds are what the core stages reported (kept as step artifacts); the rest of the
    # launch is Metaflow's (MLflow logging in the end step included).
    core = sum(digits_run.timings[k] for k in ("data", "train", "evaluate"))
    assert core + digits_run.timings["metaflow_overhead"] <= digits_run.wall_time_s + 1e-6
    # The breakdown of Metaflow's share, from task timestamps, adds up to about the same.
    parts = digits_run.tool_info["overhead"]
    assert set(parts) == {"launch_s", "in_steps_s", "between_steps_s", "after_s"}
    assert sum(parts.values()) == pytest.approx(digits_run.timings["metaflow_overhead"], abs=2.0)
    steps = digits_run.tool_info["steps"]
    assert list(steps) == ["start", "load_data", "train", "evaluate", "end"]
    assert all(s["seconds"] > 0 and not s["cloned"] for s in steps.values())
    assert steps["train"]["core_seconds"] == pytest.approx(digits_run.timings["train"], abs=1e-3)
    assert digits_run.tool_info["dataset"]["source"] == "sklearn:load_digits"
    assert digits_run.tool_info["user"] == os.environ["METAFLOW_USER"]


def test_files_stay_in_the_run_folder(digits_run: RunResult) -> None:
    run_dir = Path(digits_run.tool_info["run_dir"])
    run_id = digits_run.tool_info["run_id"]
    assert digits_run.tool_info["datastore"] == str(run_dir / ".metaflow")
    assert (run_dir / ".metaflow" / "DigitsFlow" / run_id).is_dir()
    assert (run_dir / ".metaflow_client").is_dir()  # client cache: not /tmp/metaflow_client
    for name in (
        "model",
        "data",
        "history",
        "metrics",
        "evaluation",
        "confusion_matrix",
        "tsne",
        "training_curve",
    ):
        path = Path(digits_run.artifacts[name])
        assert path.exists(), name
        assert path.is_relative_to(run_dir / "steps" / run_id), name


def test_client_read_back(digits_run: RunResult) -> None:
    """The artifacts are plain data: the model folder's bytes rebuild the model the core scores;
    each step keeps what its core stage returned, with the stage's own seconds."""
    from mlopsbench.tools.metaflow.pipeline.flow_helpers import folder_from_artifact
    from mlopsbench.usecases.digits import stages

    with readback.client_scope(Path(digits_run.tool_info["run_dir"])):
        run = _open_run(digits_run)
        assert run.successful and run.finished
        train = run["train"].task
        files = train["model_files"].data
        assert json.loads(files["model.json"])["architecture"] == "simple"
        assert train["model_info"].data["seconds"] == digits_run.timings["train"]
        assert run["end"].task["evaluation"].data["metrics"] == digits_run.metrics
        dataset = run["load_data"].task["dataset"].data
        assert dataset["digest"] == digits_run.tool_info["dataset"]["digest"]
        assert dataset["seconds"] == digits_run.timings["data"]
        kinds = {type(a.data).__name__ for a in train}
        assert "stage_seconds" not in train  # the harness keeps no timing in the flow
    assert not {"Module", "DataLoader", "Tensor"} & kinds  # nothing pickled but plain data
    out = Path(digits_run.tool_info["run_dir"]) / "check"
    model_dir = folder_from_artifact(files, out / "model")
    scored = stages.evaluate_model(
        DigitsConfig(model="simple"), digits_run.artifacts["data"], model_dir, out, plots=False
    )
    assert scored["metrics"]["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])


def test_card_html_has_the_plots(digits_run: RunResult) -> None:
    card = Path(digits_run.artifacts["card"])
    assert card == Path(digits_run.tool_info["run_dir"]) / "card.html"
    html = card.read_text()
    assert sorted(readback.card_images(html)) == [
        "Confusion matrix",
        "Training curve",
        "t-SNE of penultimate-layer embeddings",
    ]
    kinds = [c["type"] for c in readback.card_components(html)]
    assert "table" in kinds and "markdown" in kinds


def test_card_get_by_step_name_as_in_ci(digits_run: RunResult, tmp_path: Path) -> None:
    """``python <flow> card get evaluate out.html`` in the run folder (what the CI job runs)."""
    out = tmp_path / "digits-evaluate.html"
    done = subprocess.run(
        [sys.executable, str(launch.flow_file("digits")), "card", "get", "evaluate", str(out)],
        cwd=digits_run.tool_info["run_dir"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Confusion matrix" in readback.card_images(out.read_text())


def test_evidence(digits_run: RunResult) -> None:
    assert adapter.evidence(digits_run) == {
        "params": True,
        "per_epoch_metrics": True,
        "final_metrics": True,
        "model_artifact": True,
        "plots": True,
        "lineage": True,
        "run_state": True,
    }


@pytest.mark.capability("metaflow", "mlflow_tracking")
def test_logged_to_mlflow(digits_run: RunResult, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    info = digits_run.tool_info["mlflow"]
    assert info["run_id"] and info["model_uri"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlopsbench.tool"] == "metaflow"
    assert run.data.tags["metaflow.pathspec"] == digits_run.tool_info["pathspec"]
    assert run.data.params["epochs"] == "1"
    assert run.data.metrics["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1]
    assert run.inputs.dataset_inputs[0].dataset.digest == digits_run.tool_info["dataset"]["digest"]


def test_flow_cli_rejects_an_unknown_model(tmp_path: Path) -> None:
    """A user running the flow file directly gets a failed run; the Client names the step."""
    flow = launch.flow_file("digits")
    done = subprocess.run(
        [sys.executable, str(flow), "--quiet", "--no-pylint", "run", "--model", "nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown model 'nope'" in done.stdout + done.stderr
    with readback.client_scope(tmp_path):
        from metaflow import Flow

        run = Flow("DigitsFlow", _current_metadata=f"local@{tmp_path}").latest_run
        task = run["start"].task
        assert not run.successful and not task.successful
        assert task.exception.type == "mlopsbench.errors.ConfigError"
        assert [s.id for s in run] == ["start"]  # nothing after the failing step ran
