"""Shared Prefect runs: each flow run starts a temporary Prefect API, so runs are made once per
session and shared by the tests that read them.

No ``__init__.py`` in this folder: as a package, ``tests/tools/prefect`` could shadow the real
``prefect``. The root conftest already isolates HOME and TMPDIR; here Prefect's own home, API
URL and analytics are pinned before anything imports Prefect (it reads its settings once, at
import): every run the adapter starts gets a ``PREFECT_HOME`` of its own anyway.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

# Before anything imports Prefect (which reads its settings once, at import).
os.environ.pop("PREFECT_API_URL", None)
os.environ.update(
    {
        "PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-home-"),  # under the sandbox TMPDIR
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
)


# One OpenMP thread: on a busy 2-core box, spinning threads make t-SNE 3x slower.
THREADS = {"threads": "1"}


@pytest.fixture(scope="session")
def pf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect-runs")


@pytest.fixture(scope="session")
def make_request(pf_root: Path) -> Callable[..., RunRequest]:
    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        options = {**THREADS, **kw.pop("options", {})}
        return RunRequest(
            usecase=usecase, config=cfg, out_dir=pf_root / name, options=options, **kw
        )

    return make


@pytest.fixture(scope="session")
def mlflow_uri(pf_root: Path) -> str | None:
    """A SQLite MLflow store, when MLflow's client is importable (scripts/run_tests.py adds it
    from MLflow's own environment); else None, and the flow logs nowhere."""
    from mlopsbench.toolkit.registry import installed

    if not installed("mlflow"):
        return None
    return f"sqlite:///{pf_root / 'mlflow' / 'mlflow.db'}"


# A 10 % test split (180 images) keeps the t-SNE in evaluate short.
SMALL_DIGITS = DigitsConfig(
    model="simple", epochs=1, threshold=0.5, data=DigitsDataConfig(test_fraction=0.1)
)


@pytest.fixture(scope="session")
def small_digits() -> DigitsConfig:
    return SMALL_DIGITS


@pytest.fixture(scope="session")
def digits_run(make_request: Callable[..., RunRequest], mlflow_uri: str | None) -> RunResult:
    """SimpleNN, 1 epoch on the bundled digits, logged to MLflow by the flow too."""
    from mlopsbench.tools.prefect import adapter

    return adapter.run(make_request("digits-ok", SMALL_DIGITS, tracking_uri=mlflow_uri))


@pytest.fixture(scope="session")
def digits_evidence(digits_run: RunResult) -> dict[str, bool]:
    from mlopsbench.tools.prefect import adapter

    return adapter.evidence(digits_run)
