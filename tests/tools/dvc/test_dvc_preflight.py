"""Fast checks of what the DVC adapter does before (and instead of) creating a project.

An unreachable tracking server, a bad scheme, a bad data path, a missing git or a bad
experiment option fails in well under a second with one line and leaves no folder; no git or
DVC command runs.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError, ToolUnavailableError
from mlopsbench.result import RunRequest
from mlopsbench.tools.dvc import adapter, project
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

CFG = DigitsConfig(model="simple", epochs=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def no_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to create the project or run DVC fails the test."""

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a project was created or DVC was run")

    monkeypatch.setattr(adapter, "create_project", started)
    monkeypatch.setattr(adapter, "run_dvc", started)


def _one_line_and_no_folder(raised: pytest.ExceptionInfo[Exception], run: Path) -> None:
    assert "\n" not in str(raised.value)
    assert not run.exists()


def test_unreachable_tracking_server_fails_first(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", tracking_uri="htp://localhost:5000")
    with pytest.raises(ConfigError, match="scheme") as raised:
        adapter.run(request)
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_missing_npz_leaves_no_folder(tmp_path: Path) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    with pytest.raises(DataError, match=r"missing\.npz") as raised:
        adapter.run(RunRequest("digits", cfg, tmp_path / "run"))
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_missing_reviews_file_leaves_no_folder(tmp_path: Path) -> None:
    cfg = SentimentConfig(source="file", data_path=str(tmp_path / "reviews.csv"))
    with pytest.raises(DataError, match=r"reviews\.csv") as raised:
        adapter.run(RunRequest("sentiment", cfg, tmp_path / "run"))
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_no_git_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project.shutil, "which", lambda name: None)
    with pytest.raises(ToolUnavailableError, match="dvc needs git") as raised:
        adapter.run(RunRequest("digits", CFG, tmp_path / "run"))
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_bad_experiment_option_fails_first(tmp_path: Path) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", options={"experiment": "speed=9"})
    with pytest.raises(ConfigError, match="experiment option") as raised:
        adapter.run(request)
    _one_line_and_no_folder(raised, tmp_path / "run")


def test_an_existing_project_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "run" / ".dvc").mkdir(parents=True)
    with pytest.raises(ConfigError, match="fresh run folder"):
        adapter.run(RunRequest("digits", CFG, tmp_path / "run"))


def test_evidence_of_a_run_without_a_project_is_all_false(tmp_path: Path) -> None:
    from mlopsbench.result import EVIDENCE_KEYS, RunResult

    result = RunResult("dvc", "digits", "simple", {}, tool_info={"run_dir": str(tmp_path)})
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)
