"""What the Dagster adapter does before (and instead of) materialising anything.

An unreachable tracking server, a bad scheme or a missing input fails in well under a second
with one line and leaves no folder: no DAGSTER_HOME, no instance, no run.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunRequest
from mlopsbench.tools.dagster import adapter, launch
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

CFG = DigitsConfig(model="simple", epochs=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to materialise fails the test."""

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the job was materialised")

    monkeypatch.setattr(launch, "materialise", started)


def test_unreachable_tracking_server_fails_first(tmp_path: Path, no_launch: None) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
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


def test_missing_sentiment_model_leaves_no_folder(tmp_path: Path, no_launch: None) -> None:
    cfg = SentimentConfig(model_path=str(tmp_path / "no-model"), source="fixture")
    with pytest.raises(DataError):
        adapter.run(RunRequest("sentiment", cfg, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_unknown_usecase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown use case"):
        adapter.run(RunRequest("weather", CFG, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
