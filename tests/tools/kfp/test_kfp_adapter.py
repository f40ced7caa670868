"""Local KFP runs (kfp.local SubprocessRunner): read-back, gate, failures, bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.errors import ConfigError, DataError
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.kfp import adapter
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

# SimpleNN, 1 epoch; a 10 % test split halves the t-SNE plot, the slowest part of evaluate.
FAST = {"model": "simple", "epochs": 1, "data": DigitsDataConfig(test_fraction=0.1)}


def _run(
    out: Path, cfg: DigitsConfig, tracking_uri: str | None = None, **options: str
) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    request = RunRequest(
        usecase="digits", config=cfg, out_dir=out, tracking_uri=tracking_uri, options=options
    )
    return adapter.run(request)


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture(scope="module")
def passed(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> RunResult:
    """One passing run, also logged to MLflow (SQLite) by the promote component."""
    cfg = DigitsConfig(**FAST, threshold=0.5)
    return _run(tmp_path_factory.mktemp("kfp-pass"), cfg, tracking_uri=f"sqlite:///{mlflow_db}")


@pytest.mark.slow
@pytest.mark.capability("kfp", "conditional_branch")
def test_local_run_reads_outputs_back_into_the_result(passed: RunResult) -> None:
    assert passed.status == "ok", passed.error
    assert passed.tool == "kfp" and passed.model == "simple"
    assert passed.metrics["accuracy"] == pytest.approx(passed.gate["value"])
    assert passed.metrics["accuracy"] > 0.5 and "f1_9" in passed.metrics
    assert [row["epoch"] for row in passed.history] == [1]

    run_dir = Path(passed.tool_info["pipeline_run_dir"])
    assert run_dir.parent == Path(passed.tool_info["pipeline_root"])
    assert run_dir.is_relative_to(Path(passed.tool_info["log"]).parent)  # inside the run folder
    tasks = {"prepare-digits-data", "train-digits", "evaluate-digits", "promote-model"}
    assert set(passed.tool_info["task_dirs"]) == tasks
    assert passed.tool_info["promoted"] is True
    assert passed.tool_info["dataset"]["source"] == "sklearn:load_digits"

    model_dir = Path(passed.artifacts["model"])
    assert {p.name for p in model_dir.iterdir()} == {"model.safetensors", "model.json"}
    for key in ("data", "confusion_matrix", "tsne", "training_curve", "report", "promotion"):
        assert Path(passed.artifacts[key]).is_file(), key
    promotion = json.loads(Path(passed.artifacts["promotion"]).read_text())
    assert promotion["model_dir"] == str(model_dir)
    assert promotion["mlflow"] == passed.tool_info["mlflow"]


@pytest.mark.slow
@pytest.mark.capability("kfp", "mlflow_tracking")
def test_promote_logged_the_run_to_mlflow(passed: RunResult, mlflow_db: Path) -> None:
    run_id = passed.tool_info["mlflow"]["run_id"]
    assert passed.tool_info["mlflow"]["model_uri"].startswith("models:/")
    with sqlite3.connect(mlflow_db) as db:  # read MLflow's store directly: no mlflow import
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
        metrics = dict(
            db.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,))
        )
    assert tags["mlopsbench.tool"] == "kfp"
    assert metrics["accuracy"] == pytest.approx(passed.metrics["accuracy"])


@pytest.mark.slow
def test_timings_come_from_what_the_core_stages_returned(passed: RunResult) -> None:
    """The core times itself (``seconds`` in what each stage returned, kept as the outputs'
    metadata); each task's time comes from KFP's log, the rest is KFP's overhead."""
    comps = passed.tool_info["components"]
    assert {c["stage"] for c in comps.values()} == {"data", "train", "evaluate", "promote"}
    for name, c in comps.items():
        assert c["task_s"] > 0, name
        if c["stage"] != "promote":
            assert c["task_s"] >= c["core_s"] > 0, name
    assert passed.timings["train"] == comps["train-digits"]["core_s"]
    assert passed.timings["data"] == comps["prepare-digits-data"]["core_s"]
    assert passed.timings["evaluate"] == comps["evaluate-digits"]["core_s"]
    assert passed.timings["promote"] == comps["promote-model"]["task_s"]  # MLflow logging
    core = sum(passed.timings[k] for k in ("data", "train", "evaluate", "promote"))
    assert passed.timings["kfp_overhead"] > 0
    assert core + passed.timings["kfp_overhead"] <= passed.wall_time_s + 1e-6
    assert passed.tool_info["outside_tasks_s"] <= passed.tool_info["pipeline_s"]


@pytest.mark.slow
def test_evidence_comes_from_the_pipeline_root(passed: RunResult, tmp_path: Path) -> None:
    assert adapter.evidence(passed) == {
        "params": True,
        "per_epoch_metrics": True,
        "final_metrics": True,
        "model_artifact": True,
        "plots": True,
        "lineage": True,
        "run_state": True,
    }
    # Evidence re-reads KFP's files: a record pointing at nothing proves nothing.
    fake = RunResult.from_dict(
        {**passed.to_dict(), "tool_info": {"pipeline_run_dir": str(tmp_path)}}
    )
    assert not any(adapter.evidence(fake).values())


@pytest.mark.slow
def test_components_temp_files_stay_in_the_run_folder(passed: RunResult, sandbox: Path) -> None:
    out = Path(passed.tool_info["log"]).parent
    assert list((out / "tmp").glob("tmp.*/ephemeral_component.py"))
    assert not list((sandbox / "tmp").glob("tmp.*/ephemeral_component.py"))


@pytest.mark.slow
@pytest.mark.capability("kfp", "conditional_branch")
def test_sentiment_smoke_gate_failure_skips_promote(tmp_path: Path) -> None:
    """The offline sentiment pipeline end to end, with a gate it cannot pass (~0.9 accuracy)."""
    args = ["run", "sentiment", "--tool", "kfp", "--smoke", "--threshold", "0.99"]
    cli = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert cli.exit_code == 3, cli.output  # the CLI's gate-failure exit code
    (record,) = tmp_path.glob("sentiment-kfp-*/result.json")
    result = RunResult.from_dict(json.loads(record.read_text()))
    assert result.status == "gate_failed"
    assert result.error.startswith("quality gate failed: accuracy ")
    assert "promote-model skipped" in result.error
    assert result.gate["passed"] is False and 0.5 < result.gate["value"] < 0.99
    assert result.tool_info["promoted"] is False
    assert set(result.tool_info["task_dirs"]) == {
        "prepare-sentiment-data",
        "prepare-sentiment-model",
        "evaluate-sentiment",
    }
    assert "promotion" not in result.artifacts
    assert result.model == "tiny-distilbert"
    assert result.history and "train_loss" in result.history[0]  # the smoke model was trained
    assert Path(result.artifacts["model"], "config.json").is_file()
    assert set(result.timings) >= {"data", "model", "evaluate", "kfp_overhead"}
    assert "seconds" not in result.tool_info["dataset"]
    assert all(adapter.evidence(result).values()), adapter.evidence(result)


@pytest.mark.slow
def test_failing_component_is_one_line_naming_the_task(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.npz"
    np.savez(corrupt, x_train=np.zeros((2, 28, 28), np.uint8))  # no labels, no test split
    cfg = ["--model", "simple", "--epochs", "1", "--data", "npz", "--data-path", str(corrupt)]
    result = CliRunner().invoke(
        app, ["run", "digits", "--tool", "kfp", "--out", str(tmp_path), *cfg]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (record,) = tmp_path.glob("digits-kfp-*/result.json")
    saved = json.loads(record.read_text())
    assert saved["status"] == "failed"
    error = saved["error"]
    assert "\n" not in error
    assert error.startswith("KFP pipeline FAILURE in task 'prepare-digits-data': DataError: ")
    assert "kfp.log" in error
    # The CLI prints that line (its console may wrap it at 80 columns in this test runner).
    assert "".join(f"error: {error}".split()) in "".join(result.output.split())


def test_missing_data_and_unwritable_root_fail_before_any_process(tmp_path: Path) -> None:
    npz = DigitsDataConfig(source="npz", path=str(tmp_path / "no.npz"))
    missing = DigitsConfig(model="simple", epochs=1, data=npz)
    with pytest.raises(DataError, match="npz data not found"):
        _run(tmp_path / "a", missing)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"pipeline root .* is not writable"):
        _run(tmp_path / "b", DigitsConfig(**FAST), pipeline_root=str(blocker / "root"))
    with pytest.raises(ConfigError, match="unknown use case"):
        adapter.run(RunRequest(usecase="mnist", config=DigitsConfig(), out_dir=tmp_path))
