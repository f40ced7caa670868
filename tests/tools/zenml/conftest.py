"""Shared ZenML runs: each costs a worker process, a new store and a training, so runs are made
once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/zenml`` could shadow the real
``zenml``. Everything a run writes (its ZenML configuration and store, step files, the MLflow
store) lives under a session temp folder; the root conftest already isolates HOME and TMPDIR,
and the adapter gives every run its own ``ZENML_CONFIG_PATH``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sweep.config import SweepConfig

# One OpenMP thread in the worker: on a busy 2-core box, spinning threads make t-SNE 3x slower.
THREADS = {"threads": "1"}
# The shared digits run: the configuration whose accuracy plain must give too.
DIGITS = DigitsConfig(model="simple", epochs=1, threshold=0.5)
# The shared sweep: small, sequential (workers=1: the trials are then exactly the core's).
SWEEP = SweepConfig(trials=4, models="simple,deep", epochs=1, workers=1, threshold=0.5)


@pytest.fixture(scope="session")
def zm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zenml-runs")


@pytest.fixture(scope="session")
def make_request(zm_root: Path) -> Callable[..., RunRequest]:
    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        options = {**THREADS, **kw.pop("options", {})}
        return RunRequest(
            usecase=usecase, config=cfg, out_dir=zm_root / name, options=options, **kw
        )

    return make


@pytest.fixture(scope="session")
def mlflow_uri(zm_root: Path) -> str:
    return f"sqlite:///{zm_root / 'mlflow' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def digits_run(make_request: Callable[..., RunRequest], mlflow_uri: str) -> RunResult:
    """SimpleNN, 1 epoch on the bundled digits, logged to MLflow by the last step."""
    from mlopsbench.tools.zenml import adapter

    return adapter.run(make_request("digits-ok", DIGITS, tracking_uri=mlflow_uri))


@pytest.fixture(scope="session")
def digits_evidence(digits_run: RunResult) -> dict[str, bool]:
    from mlopsbench.tools.zenml import adapter

    return adapter.evidence(digits_run)


@pytest.fixture(scope="session")
def sentiment_run(make_request: Callable[..., RunRequest]) -> RunResult:
    """The offline smoke model (a tiny DistilBERT trained on the bundled reviews)."""
    from mlopsbench.tools.zenml import adapter

    return adapter.run(make_request("sentiment-smoke", SentimentConfig(smoke=True), "sentiment"))


@pytest.fixture(scope="session")
def sweep_run(make_request: Callable[..., RunRequest]) -> RunResult:
    """The sweep's dynamic pipeline: 4 trials mapped from the plan, the best one gated."""
    from mlopsbench.tools.zenml import sweep

    return sweep.run(make_request("sweep-ok", SWEEP, "sweep"))
