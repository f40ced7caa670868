"""What the Prefect adapter refuses before (and instead of) starting a flow: one line, fast,
and no run folder left behind. No worker process starts here."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunRequest
from mlopsbench.tools.prefect import adapter, launch
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

CFG = DigitsConfig(model="simple", epochs=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start the worker fails the test."""

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the worker was started")

    monkeypatch.setattr(launch, "run_worker", started)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _refused(request: RunRequest, error: type[Exception], match: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(error, match=match) as raised:
        adapter.run(request)
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(raised.value)
    assert not Path(request.out_dir).exists()


def test_unreachable_tracking_server_fails_first(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    _refused(RunRequest("digits", CFG, tmp_path / "run", tracking_uri=uri), ServerError, "MLflow")


def test_unreachable_prefect_server_fails_first(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api"
    request = RunRequest("digits", CFG, tmp_path / "run", options={"prefect_api_url": url})
    _refused(request, ServerError, r"Prefect API http://127\.0\.0\.1:\d+/api is unreachable")


def test_prefect_api_url_from_the_environment_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_closed_port()}/api")
    _refused(RunRequest("digits", CFG, tmp_path / "run"), ServerError, "unreachable")


def test_a_prefect_api_url_without_scheme_is_a_config_error(tmp_path: Path) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", options={"prefect_api_url": "h:4200"})
    _refused(request, ConfigError, "http://")


def test_unknown_tracking_scheme_is_a_config_error(tmp_path: Path) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", tracking_uri="htp://localhost:5000")
    _refused(request, ConfigError, "scheme")


def test_missing_npz_leaves_no_folder(tmp_path: Path) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    _refused(RunRequest("digits", cfg, tmp_path / "run"), DataError, r"missing\.npz")


def test_missing_reviews_file_leaves_no_folder(tmp_path: Path) -> None:
    cfg = SentimentConfig(source="file", data_path=str(tmp_path / "reviews.csv"))
    _refused(RunRequest("sentiment", cfg, tmp_path / "run"), DataError, r"reviews\.csv")


def test_a_bad_timeout_option_is_a_config_error(tmp_path: Path) -> None:
    request = RunRequest("digits", CFG, tmp_path / "run", options={"timeout_s": "soon"})
    _refused(request, ConfigError, "timeout_s")
