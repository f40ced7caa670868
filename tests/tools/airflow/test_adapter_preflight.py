"""Fast checks: the Airflow adapter rejects bad inputs before any Airflow home or run file.

Before, a missing data file cost a DB migration and a failed DAG run (leaving ``airflow_home/``,
``alerts.jsonl`` and a record); an unreachable MLflow server ran the whole DAG and then
``log_to_mlflow``'s retries (84 s). Now both fail first, in one line. No worker starts here.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunRequest
from mlopsbench.tools.airflow import adapter
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    def worker(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Airflow worker was started")

    monkeypatch.setattr(adapter, "_run_worker", worker)


def _request(out: Path, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)  # the CLI creates the run folder before the adapter
    return RunRequest(usecase=usecase, config=cfg, out_dir=out, **kw)


@pytest.mark.parametrize("source", ["npz", "idx"])
def test_missing_data_leaves_nothing(tmp_path: Path, no_worker: None, source: str) -> None:
    missing = tmp_path / f"missing.{source}"
    cfg = DigitsConfig(data=DigitsDataConfig(source=source, path=str(missing)))
    out = tmp_path / "run"
    with pytest.raises(DataError, match=f"{source} data not found: .*missing"):
        adapter.run(_request(out, cfg))
    assert list(out.iterdir()) == []


def test_missing_sentiment_data_leaves_nothing(tmp_path: Path, no_worker: None) -> None:
    cfg = SentimentConfig(source="file", data_path=str(tmp_path / "reviews.csv"))
    out = tmp_path / "run"
    with pytest.raises(DataError, match=r"data file not found: .*reviews\.csv"):
        adapter.run(_request(out, cfg, usecase="sentiment"))
    assert list(out.iterdir()) == []


def test_unreachable_tracking_server_fails_first(tmp_path: Path, no_worker: None) -> None:
    out = tmp_path / "run"
    uri = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable") as raised:
        adapter.run(_request(out, DigitsConfig(model="simple", epochs=1), tracking_uri=uri))
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert list(out.iterdir()) == []


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path, no_worker: None) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="scheme"):
        adapter.run(_request(out, DigitsConfig(), tracking_uri="mlfow://x"))
    assert list(out.iterdir()) == []


def test_a_reused_home_is_not_created_for_bad_input(tmp_path: Path, no_worker: None) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    home = tmp_path / "shared-home"
    with pytest.raises(DataError):
        adapter.run(_request(tmp_path / "run", cfg, options={"airflow_home": str(home)}))
    assert not home.exists()
