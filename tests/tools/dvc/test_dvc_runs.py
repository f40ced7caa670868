"""Other DVC runs: the sentiment smoke pipeline, a local data file versioned with ``dvc add``,
a failing stage, a model below its gate, and the CLI (accuracy equal to plain's).

The failure comes from the test alone: a ``sitecustomize`` on PYTHONPATH makes a core stage
raise in the stage processes; the pipeline files know nothing about it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlopsbench.result import RunRequest
from mlopsbench.tools.dvc import adapter, project
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow

NO_EXPERIMENT = {"experiment": "none"}


def test_sentiment_smoke_matches_plain(make_request: Callable[..., RunRequest]) -> None:
    """The offline tiny DistilBERT: the same accuracy as plain (0.91), every evidence item."""
    request = make_request("sentiment-smoke", SentimentConfig(smoke=True), usecase="sentiment")
    result = adapter.run(request)
    assert result.status == "ok", result.error
    assert result.model == "tiny-distilbert"
    assert result.metrics["accuracy"] == pytest.approx(0.91)
    assert result.tool_info["stages"]["build_model"] == "build_model"
    assert [row["epoch"] for row in result.history] == list(range(1, 11))
    assert result.tool_info["experiment"]["ran"] == ["evaluate"]
    assert result.tool_info["registered"]["tag"] == "sentiment-classifier@v0.0.1"
    assert adapter.evidence(result) == dict.fromkeys(adapter.EVIDENCE_KEYS, True)


def test_local_data_is_versioned_in_the_project(
    make_request: Callable[..., RunRequest], tmp_path: Path
) -> None:
    """A data file the user gives is copied into ``inputs/`` and tracked with ``dvc add``;
    params.yaml points at the copy and dvc.lock ties the data stage to its md5."""
    rng = np.random.default_rng(0)
    data = tmp_path / "digits.npz"
    np.savez(
        data,
        x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 200),
        x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 50),
    )
    cfg = DigitsConfig(
        model="simple", epochs=1, threshold=0.0, data=DigitsDataConfig(path=str(data))
    )
    result = adapter.run(make_request("digits-npz", cfg, options=NO_EXPERIMENT))
    assert result.status == "ok", result.error
    assert result.params["data_path"] == str(data)  # the record keeps what the user gave
    root = Path(result.tool_info["run_dir"])
    assert result.tool_info["inputs"] == {
        "data_path": {"given": str(data), "path": "inputs/data/digits.npz"}
    }
    assert (root / "inputs" / "data" / "digits.npz").read_bytes() == data.read_bytes()
    assert yaml.safe_load((root / "params.yaml").read_text())["data_path"] == (
        "inputs/data/digits.npz"
    )
    added = yaml.safe_load((root / "inputs.dvc").read_text())["outs"][0]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["prepare_data"]
    assert {"path": "inputs", "md5": added["md5"]}.items() <= next(
        dep for dep in lock["deps"] if dep["path"] == "inputs"
    ).items()
    assert result.tool_info["dataset"]["source"].startswith("npz")
    assert "experiment" not in result.tool_info and "experiment" not in result.timings
    assert adapter.evidence(result)["params"]  # params.yaml holds the project's copy


@pytest.mark.capability("dvc", "resume_cache", "remote_trigger")
def test_failed_stage_is_one_line_and_repro_resumes_after_it(
    make_request: Callable[..., RunRequest], fail_stage: Callable[..., None]
) -> None:
    """evaluate fails once; then ``dvc repro`` (the CLI, as CI runs it) reruns only evaluate:
    the data and the model finished before the failure and are not made again."""
    fail_stage("mlopsbench.usecases.digits.stages:evaluate_model", once=True)
    data = DigitsDataConfig(limit_train=200, test_fraction=0.1)
    cfg = DigitsConfig(model="simple", epochs=1, data=data)
    failed = adapter.run(make_request("digits-fail", cfg, options=NO_EXPERIMENT))
    assert failed.status == "failed"
    assert failed.error == (
        "dvc repro failed in stage evaluate: RuntimeError: injected failure in evaluate_model"
    )
    assert failed.metrics == {} and failed.timings["train"] > 0
    assert "evaluate" not in failed.timings
    assert failed.tool_info["repro"]["ran"] == ["prepare_data", "train", "evaluate"]
    assert "registered" not in failed.tool_info and "repro_check" not in failed.tool_info
    found = adapter.evidence(failed)
    assert not found["run_state"] and not found["final_metrics"]
    root = Path(failed.tool_info["run_dir"])
    resumed = project.run_dvc(root, ["repro"], project.dvc_env(root, None, {}), "resume")
    assert resumed.ok, resumed.failure()
    assert resumed.ran == ["evaluate"]
    assert {"prepare_data", "train"} <= set(resumed.skipped)
    assert adapter.evidence(failed)["final_metrics"]  # eval/metrics.json, as DVC shows it


def test_cli_gate_failure_and_accuracy_equal_to_plain(tmp_path: Path) -> None:
    """``mlopsbench run digits --tool dvc --model simple --epochs 1``: plain's accuracy
    (0.8750) is below the default gate (0.90), so the CLI exits 3 and nothing is registered."""
    import dvc.api

    env = {**os.environ, "COLUMNS": "200"}
    options = ("--model", "simple", "--epochs", "1", "--out", str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "run", "digits", "--tool", "dvc", *options],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    (record,) = tmp_path.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["status"] == "gate_failed"
    assert round(result["metrics"]["accuracy"], 4) == 0.8750
    assert result["tool_info"]["registered"] is None
    from dvc.exceptions import ArtifactNotFoundError

    with pytest.raises(ArtifactNotFoundError):
        dvc.api.artifacts_show("digits-classifier", repo=str(record.parent))
