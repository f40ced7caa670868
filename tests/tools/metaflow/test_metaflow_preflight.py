"""Fast checks of what the Metaflow adapter does before (and instead of) starting a flow.

An unreachable tracking server, a bad scheme or a bad path fails in well under a second with
one line and leaves no folder; as root the adapter picks the project's user name and says so;
only a run whose step failed gets a ``resume_command``. No flow process starts here.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunRequest
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.tools.metaflow import adapter, launch, readback
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

CFG = DigitsConfig(model="simple", epochs=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start the flow fails the test."""

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the flow was started")

    monkeypatch.setattr(adapter, "launch", started)
    monkeypatch.setattr(launch, "import_runner", started)


def _no_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root with no name set, as in a container: every source says root or nothing."""
    for name in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "root")
    monkeypatch.setattr(launch.getpass, "getuser", lambda: "root")


def test_unreachable_tracking_server_fails_first(tmp_path: Path, no_launch: None) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    request = RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri)
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(request)
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()  # not even the datastore folder


def test_resume_checks_the_tracking_server_too(tmp_path: Path, no_launch: None) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ServerError):
        adapter.resume(RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri), "1")
    assert not (tmp_path / "run").exists()


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path, no_launch: None) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", tracking_uri="htp://localhost:5000")
    with pytest.raises(ConfigError, match="scheme"):
        adapter.run(request)
    assert not (tmp_path / "run").exists()


def test_missing_npz_leaves_no_folder(tmp_path: Path, no_launch: None) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    with pytest.raises(DataError, match=r"missing\.npz"):
        adapter.run(RunRequest("digits", cfg, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_root_runs_as_the_project_user_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_user(monkeypatch)
    assert launch.resolve_user({}) == launch.PROJECT_USER == "mlopsbench"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning:") and "METAFLOW_USER=mlopsbench" in lines[0]


def test_a_set_user_wins_without_a_notice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_user(monkeypatch)
    monkeypatch.setenv("METAFLOW_USER", "bench")
    assert launch.resolve_user({}) == "bench"
    assert launch.resolve_user({"metaflow_user": "alice"}) == "alice"
    monkeypatch.delenv("METAFLOW_USER")
    monkeypatch.setenv("LOGNAME", "carol")  # a real login name is used as before
    assert launch.resolve_user({}) == "carol"
    assert capsys.readouterr().err == ""


def test_an_explicit_root_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_user(monkeypatch)
    monkeypatch.setenv("METAFLOW_USER", "root")
    with pytest.raises(ConfigError, match="METAFLOW_USER is 'root'"):
        adapter.run(RunRequest("digits", CFG, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="metaflow_user option"):
        launch.resolve_user({"metaflow_user": "root"})


def _back(successful: bool, gate_passed: bool, failure: Any = None) -> readback.RunBack:
    gate = {"metric": "accuracy", "passed": gate_passed, "value": 0.5, "threshold": 0.9}
    return readback.RunBack(
        run_id="7",
        pathspec="DigitsFlow/7",
        successful=successful,
        origin=None,
        steps={},
        stage_steps={"evaluate_model": "evaluate"},
        outputs={"evaluate_model": {"metrics": {"accuracy": 0.5}, "gate": gate}},
        failure=failure,
    )


def _record(tmp_path: Path, back: readback.RunBack) -> Any:
    recorder = RunRecorder("metaflow", RunRequest("digits", CFG, tmp_path))
    launched = launch.Launched(None, 0.0, 1.0, 1.0, "")
    flow = launch.flow_file("digits")
    return adapter._record(recorder, flow, tmp_path, "bench", back, launched, None)


class _Exc:
    type = "builtins.RuntimeError"
    exception = "RuntimeError: injected failure in step 'train'"


def test_resume_command_only_when_a_step_failed(tmp_path: Path) -> None:
    gate_failed = _record(tmp_path, _back(successful=True, gate_passed=False))
    assert gate_failed.status == "gate_failed"
    assert "resume_command" not in gate_failed.tool_info

    passed = _record(tmp_path, _back(successful=True, gate_passed=True))
    assert passed.status == "ok" and "resume_command" not in passed.tool_info

    failed = _record(
        tmp_path, _back(successful=False, gate_passed=False, failure=("train", _Exc()))
    )
    assert failed.status == "failed" and "step train" in str(failed.error)
    command = failed.tool_info["resume_command"]
    assert "resume --origin-run-id 7" in command and "METAFLOW_USER=bench" in command
    assert "pipeline/digits_flow.py" in command


def test_relative_paths_reach_the_steps_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps run in the run folder: a relative --data-path or SQLite store must not move."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    monkeypatch.chdir(tmp_path)
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path="digits.npz"))
    params = launch.flow_parameters(cfg, "sqlite:///store/mlflow.db")
    assert params["data_path"] == str(tmp_path / "digits.npz")
    assert params["mlflow_uri"] == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    absolute = f"sqlite:///{tmp_path / 'm.db'}"
    assert launch.flow_parameters(cfg, absolute)["mlflow_uri"] == absolute
    for uri in ("http://127.0.0.1:5000", "file:///tmp/mlruns", "postgresql://u@h/db", "databricks"):
        assert launch.flow_parameters(cfg, uri)["mlflow_uri"] == uri
    assert launch.flow_parameters(cfg, "mlruns")["mlflow_uri"] == str(tmp_path / "mlruns")
    sentiment = SentimentConfig(model_path="model", source="file", data_path="reviews.csv")
    params = launch.flow_parameters(sentiment, None)
    assert params["model_path"] == str(tmp_path / "model")
    assert params["data_path"] == str(tmp_path / "reviews.csv")
    assert params["mlflow_uri"] == ""
