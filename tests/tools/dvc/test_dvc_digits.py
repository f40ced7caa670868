"""The digits pipeline end to end: dvc repro, read back with DVC's CLI and API, the no-op
repro, an experiment, the model registry, the plots page, MLflow interop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsbench.result import RunResult
from mlopsbench.tools.dvc import adapter, project

pytestmark = pytest.mark.slow


def _root(result: RunResult) -> Path:
    return Path(result.tool_info["run_dir"])


def dvc(root: Path, *args: str) -> str:
    """A DVC command as a user types it in the project; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=project.dvc_env(root, None, {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=True
    ).stdout


def test_run_record(digits_run: RunResult) -> None:
    assert digits_run.status == "ok", digits_run.error
    assert digits_run.tool == "dvc" and digits_run.model == "simple"
    assert digits_run.params["epochs"] == 1 and digits_run.params["model"] == "simple"
    assert 0.5 <= digits_run.metrics["accuracy"] <= 1.0
    assert digits_run.gate == {
        "metric": "accuracy",
        "value": digits_run.metrics["accuracy"],
        "threshold": 0.5,
        "passed": True,
    }
    assert [h["epoch"] for h in digits_run.history] == [1]
    for key in (
        "data",
        "train",
        "evaluate",
        "tracking",
        "dvc_overhead",
        "dvc_setup",
        "readback",
        "register",
        "repro_check",
        "experiment",
        "plots_html",
    ):
        assert digits_run.timings[key] > 0, key
    # Core seconds are what the core stages reported (in the files their stages wrote); the rest
    # of `dvc repro` is DVC's (process starts, hashing, dvc.lock), MLflow logging apart.
    repro = sum(digits_run.timings[k] for k in ("data", "train", "evaluate", "tracking"))
    assert repro + digits_run.timings["dvc_overhead"] <= digits_run.wall_time_s + 1e-6
    info = digits_run.tool_info
    assert info["stages"] == {
        "prepare_data": "prepare_data",
        "build_model": "train",
        "evaluate_model": "evaluate",
    }
    assert info["repro"]["ran"] == ["prepare_data", "train", "evaluate"]
    assert info["dataset"]["source"] == "sklearn:load_digits"
    assert info["inputs"] == {}  # the bundled digits: no local file to version


def test_files_stay_in_the_project(digits_run: RunResult) -> None:
    root = _root(digits_run)
    for name in ("model", "data", "history", "metrics", "confusion_matrix", "tsne", "plots_html"):
        path = Path(digits_run.artifacts[name])
        assert path.exists() and path.is_relative_to(root), name
    from mlopsbench.tools.dvc.readback import open_repo

    with open_repo(root) as repo:  # DVC's index and hash cache live in the project too
        assert repo.site_cache_dir.startswith(str(root / ".dvc" / "tmp"))


def test_params_metrics_and_status_through_the_cli(digits_run: RunResult) -> None:
    """What a DVC user sees, as JSON: the same params, metrics and a clean state."""
    root = _root(digits_run)
    metrics = json.loads(dvc(root, "metrics", "show", "--json"))[""]["data"]
    assert metrics["eval/metrics.json"]["data"]["accuracy"] == digits_run.metrics["accuracy"]
    assert metrics["dvclive/metrics.json"]["data"]["step"] == 1
    params = json.loads(dvc(root, "params", "diff", "--all", "--json"))["params.yaml"]
    assert params["epochs"]["new"] == 1 and params["threshold"]["new"] == 0.5
    assert json.loads(dvc(root, "status", "--json")) == {}
    data = json.loads(dvc(root, "data", "status", "--json", "--unchanged"))
    assert "train/model/" in data["unchanged"] and not data.get("not_in_cache")


def test_a_second_repro_skips_every_stage(digits_run: RunResult) -> None:
    check = digits_run.tool_info["repro_check"]
    assert check["up_to_date"] and check["ran"] == []
    assert set(check["skipped"]) >= {"prepare_data", "train", "evaluate", "inputs.dvc"}
    assert "Data and pipelines are up to date." in Path(check["log"]).read_text()
    root = _root(digits_run)
    assert git(root, "status", "--porcelain", "dvc.lock") == ""  # dvc.lock left as committed


def test_an_experiment_reruns_only_what_the_param_change_touches(digits_run: RunResult) -> None:
    exp = digits_run.tool_info["experiment"]
    assert exp["ok"] and exp["set_param"] == "threshold=0.55"
    assert exp["ran"] == ["evaluate"]  # threshold is evaluate's param only
    assert set(exp["skipped"]) >= {"prepare_data", "train"}
    assert exp["params"] == {"threshold": 0.55}
    assert exp["accuracy"] == digits_run.metrics["accuracy"]  # same model, stricter gate
    root = _root(digits_run)
    (baseline,) = [row for row in json.loads(dvc(root, "exp", "show", "--json")) if row["name"]]
    assert baseline["rev"] == digits_run.tool_info["commit"]  # branched off the committed run
    (shown,) = [rev for e in baseline["experiments"] for rev in e["revs"]]
    assert shown["name"] == "param-change" and shown["rev"].startswith(exp["rev"])
    assert shown["data"]["params"]["params.yaml"]["data"]["threshold"] == 0.55
    assert yaml.safe_load((root / "params.yaml").read_text())["threshold"] == 0.5  # --temp


def test_lineage_in_dvc_lock(digits_run: RunResult) -> None:
    """dvc.lock links the data file's md5 to the model's, as committed in git."""
    root = _root(digits_run)
    lock = yaml.safe_load(git(root, "show", f"{digits_run.tool_info['commit']}:dvc.lock"))
    stages = lock["stages"]

    def md5(entries: list[dict[str, Any]], path: str) -> str:
        return str(next(e["md5"] for e in entries if e["path"] == path))

    data = md5(stages["prepare_data"]["outs"], "data/data.npz")
    model = md5(stages["train"]["outs"], "train/model")
    assert md5(stages["train"]["deps"], "data/data.npz") == data
    assert md5(stages["evaluate"]["deps"], "train/model") == model and model.endswith(".dir")
    assert digits_run.tool_info["lineage"] == {
        "data": f"data/data.npz md5:{data}",
        "model": f"train/model md5:{model}",
    }
    assert stages["train"]["params"]["params.yaml"]["epochs"] == 1


def test_model_registered_past_the_gate(digits_run: RunResult) -> None:
    import dvc.api

    info = digits_run.tool_info["registered"]
    assert info["tag"] == "digits-classifier@v0.0.1" and info["path"] == "train/model"
    root = _root(digits_run)
    assert "digits-classifier@v0.0.1" in git(root, "tag").split()
    shown = dvc.api.artifacts_show("digits-classifier", repo=str(root))
    assert shown == {"rev": digits_run.tool_info["commit"], "path": "train/model"}


def test_model_comes_back_from_the_dvc_cache(digits_run: RunResult, tmp_path: Path) -> None:
    """On a copy of the project: delete the model, ``dvc checkout`` restores it from DVC's
    cache, and the core scores it as the run did."""
    from mlopsbench.usecases.digits import stages
    from mlopsbench.usecases.digits.config import DigitsConfig

    copy = tmp_path / "copy"
    shutil.copytree(_root(digits_run), copy, ignore=shutil.ignore_patterns("site-cache"))
    shutil.rmtree(copy / "train" / "model")
    dvc(copy, "checkout", "train/model")
    scored = stages.evaluate_model(
        DigitsConfig(model="simple"),
        copy / "data" / "data.npz",
        copy / "train" / "model",
        tmp_path / "scored",
        plots=False,
    )
    assert scored["metrics"]["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])


def test_dvclive_logged_the_epochs(digits_run: RunResult) -> None:
    from mlopsbench.tools.dvc.readback import epoch_rows

    series = epoch_rows(_root(digits_run))
    assert set(series) >= {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    row = series["test_accuracy"][0]
    assert row["step"] == "1"
    assert float(row["test_accuracy"]) == pytest.approx(digits_run.history[0]["test_accuracy"])


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


def test_evidence_notices_a_changed_project(digits_run: RunResult, tmp_path: Path) -> None:
    """On a copy: a params.yaml edited after the run is out of date, and no longer the run's."""
    copy = tmp_path / "copy"
    shutil.copytree(_root(digits_run), copy, ignore=shutil.ignore_patterns("site-cache"))
    params = copy / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 1", "epochs: 2"))
    moved = RunResult.from_dict(
        {**digits_run.to_dict(), "tool_info": {**digits_run.tool_info, "run_dir": str(copy)}}
    )
    found = adapter.evidence(moved)
    assert not found["params"] and not found["run_state"]
    assert found["final_metrics"] and found["lineage"]


@pytest.mark.capability("dvc", "mlflow_tracking")
def test_logged_to_mlflow(digits_run: RunResult, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    info = digits_run.tool_info["mlflow"]
    assert info["run_id"] and info["model_uri"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlopsbench.tool"] == "dvc"
    assert run.data.tags["dvc.stage"] == "evaluate"
    assert run.data.params["epochs"] == "1"
    assert run.data.metrics["accuracy"] == pytest.approx(digits_run.metrics["accuracy"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1]
    assert run.inputs.dataset_inputs[0].dataset.digest == digits_run.tool_info["dataset"]["digest"]
    # Only the run itself logs to MLflow: the experiment (`dvc exp run`) does not.
    assert len(client.search_runs([run.info.experiment_id])) == 1
