"""Fast checks of what the ZenML adapter does before (and instead of) starting its worker.

An unreachable tracking server, a bad scheme, a bad path or a bad option fails in well under a
second with one line and leaves no folder; the harness process never imports ZenML. No worker
starts here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError, ServerError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.zenml import adapter, launch
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

CFG = DigitsConfig(model="simple", epochs=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start the worker fails the test."""

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the worker was started")

    monkeypatch.setattr(adapter, "run_worker", started)


def test_unreachable_tracking_server_fails_first(tmp_path: Path, no_worker: None) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path, no_worker: None) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", tracking_uri="htp://localhost:5000")
    with pytest.raises(ConfigError, match="scheme"):
        adapter.run(request)
    assert not (tmp_path / "run").exists()


def test_missing_npz_leaves_no_folder(tmp_path: Path, no_worker: None) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    with pytest.raises(DataError, match=r"missing\.npz"):
        adapter.run(RunRequest("digits", cfg, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_missing_sentiment_model_leaves_no_folder(tmp_path: Path, no_worker: None) -> None:
    cfg = SentimentConfig(model_path=str(tmp_path / "no-model"), source="fixture")
    with pytest.raises(DataError, match="no-model"):
        adapter.run(RunRequest("sentiment", cfg, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["soon", "0"])
def test_bad_timeout_option_is_a_config_error(tmp_path: Path, no_worker: None, value: str) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", options={"timeout_s": value})
    with pytest.raises(ConfigError, match="timeout_s"):
        adapter.run(request)
    assert not (tmp_path / "run").exists()


def test_run_request_makes_local_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline runs in the run folder: paths typed here must mean the same there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits.npz").write_bytes(b"")
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path="digits.npz"))
    request = adapter._run_request(
        RunRequest("digits", cfg, tmp_path / "run", tracking_uri="sqlite:///mlflow.db")
    )
    assert request["values"]["data_path"] == str(tmp_path / "digits.npz")
    assert request["mlflow_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert request["values"]["data_limit_train"] is None  # ZenML takes None: no unset markers


def test_the_worker_env_isolates_zenml(tmp_path: Path) -> None:
    layout = launch.Layout(tmp_path / "run")
    env = adapter._env(layout, {"threads": "1"})
    assert env["ZENML_CONFIG_PATH"] == str(tmp_path / "run" / "zenml")
    assert env["ZENML_REPOSITORY_PATH"] == str(tmp_path / "run")
    assert env["ZENML_ANALYTICS_OPT_IN"] == "false"
    assert env["MLFLOW_TRACKING_URI"] == ""
    assert env["OMP_NUM_THREADS"] == "1"


def test_a_worker_without_result_is_one_line_pointing_at_its_log(tmp_path: Path) -> None:
    layout = launch.Layout(tmp_path)
    env = {**launch.zenml_env(tmp_path / "zenml"), "PYTHONPATH": str(tmp_path)}
    (tmp_path / "sitecustomize.py").write_text("import os; os._exit(7)")  # dies at start-up
    with pytest.raises(MlopsbenchError, match="code 7 without a result") as raised:
        launch.run_worker("run", {}, layout, env, timeout_s=60)
    assert "\n" not in str(raised.value) and "zenml.log" in str(raised.value)


def test_evidence_of_a_run_without_store_is_all_false(tmp_path: Path) -> None:
    result = RunResult(tool="zenml", usecase="digits", model="simple", params={})
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)
    result.tool_info = {"zenml_config": str(tmp_path / "gone"), "run_id": "x"}
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)


def test_the_harness_never_imports_zenml() -> None:
    """ZenML reads its configuration when first used: only worker processes import it."""
    code = (
        "import sys; from mlopsbench.tools.zenml import adapter, commands, probe, server; "
        "assert 'zenml' not in sys.modules, 'zenml imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
