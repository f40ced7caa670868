"""Fast checks: the KFP adapter rejects bad inputs before it creates any folder or pipeline.

A missing data file or an unreachable MLflow server used to surface after ``pipeline_root/``
existed (or after the whole pipeline ran, in ``promote-model``); now both fail first, in one
line, and the run folder stays empty. No component process starts here.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunRequest
from mlopsbench.tools.kfp import adapter
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the pipeline was built")

    monkeypatch.setattr(adapter, "build_pipeline", build)


def _request(out: Path, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)  # the CLI creates the run folder before the adapter
    return RunRequest(usecase=usecase, config=cfg, out_dir=out, **kw)


def test_missing_npz_leaves_no_pipeline_root(tmp_path: Path, no_pipeline: None) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    out = tmp_path / "run"
    with pytest.raises(DataError, match=r"npz data not found: .*missing\.npz"):
        adapter.run(_request(out, cfg))
    assert list(out.iterdir()) == []


def test_missing_npz_leaves_no_explicit_pipeline_root(tmp_path: Path, no_pipeline: None) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    root = tmp_path / "elsewhere" / "root"
    with pytest.raises(DataError):
        adapter.run(_request(tmp_path / "run", cfg, options={"pipeline_root": str(root)}))
    assert not (tmp_path / "elsewhere").exists()


def test_missing_sentiment_model_leaves_nothing(tmp_path: Path, no_pipeline: None) -> None:
    cfg = SentimentConfig(model_path=str(tmp_path / "no-model"), source="fixture")
    out = tmp_path / "run"
    with pytest.raises(DataError, match="model folder not found"):
        adapter.run(_request(out, cfg, usecase="sentiment"))
    assert list(out.iterdir()) == []


def test_unreachable_tracking_server_fails_first(tmp_path: Path, no_pipeline: None) -> None:
    out = tmp_path / "run"
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(_request(out, DigitsConfig(model="simple", epochs=1), tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert list(out.iterdir()) == []


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path, no_pipeline: None) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="scheme"):
        adapter.run(_request(out, DigitsConfig(), tracking_uri="mlfow://x"))
    assert list(out.iterdir()) == []
