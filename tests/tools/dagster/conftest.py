"""Shared Dagster runs: each costs a training, so runs are made once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/dagster`` could shadow the real
``dagster``. Everything a run writes (its DAGSTER_HOME, the assets' files, the MLflow store)
lives under a session temp folder; the root conftest already isolates HOME and TMPDIR.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig


@pytest.fixture(autouse=True)
def _no_dagster_home_leaks() -> Iterator[None]:
    """The adapter sets DAGSTER_HOME only while it holds an instance: never after a test."""
    before = os.environ.get("DAGSTER_HOME")
    yield
    assert os.environ.get("DAGSTER_HOME") == before


@pytest.fixture(scope="session")
def dg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dagster-runs")


@pytest.fixture(scope="session")
def make_request(dg_root: Path) -> Callable[..., RunRequest]:
    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        return RunRequest(usecase=usecase, config=cfg, out_dir=dg_root / name, **kw)

    return make


@pytest.fixture(scope="session")
def mlflow_uri(dg_root: Path) -> str:
    return f"sqlite:///{dg_root / 'mlflow' / 'mlflow.db'}"


# A 10 % test split (180 images) keeps the t-SNE in the evaluation short.
SMALL_SPLIT = DigitsDataConfig(test_fraction=0.1)


@pytest.fixture(scope="session")
def digits_run(make_request: Callable[..., RunRequest], mlflow_uri: str) -> RunResult:
    """SimpleNN, 1 epoch on the bundled digits, gate passed, logged to MLflow."""
    from mlopsbench.tools.dagster import adapter

    cfg = DigitsConfig(model="simple", epochs=1, threshold=0.5, data=SMALL_SPLIT)
    return adapter.run(make_request("digits-ok", cfg, tracking_uri=mlflow_uri))


@pytest.fixture(scope="session")
def gate_failed_run(make_request: Callable[..., RunRequest], mlflow_uri: str) -> RunResult:
    """A model that cannot reach its threshold (1.0) on 200 training images."""
    from mlopsbench.tools.dagster import adapter

    data = DigitsDataConfig(test_fraction=0.1, limit_train=200)
    cfg = DigitsConfig(model="simple", epochs=1, threshold=1.0, data=data)
    return adapter.run(make_request("digits-gate", cfg, tracking_uri=mlflow_uri))


@pytest.fixture(scope="session")
def sentiment_run(make_request: Callable[..., RunRequest]) -> RunResult:
    """The offline smoke model on the bundled reviews."""
    from mlopsbench.tools.dagster import adapter

    return adapter.run(make_request("sentiment-smoke", SentimentConfig(smoke=True), "sentiment"))
