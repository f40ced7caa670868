"""Shared Metaflow runs: each flow run costs a process per step, so runs are made once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/metaflow`` could shadow the real
``metaflow``. Everything a run writes (datastore, step files, client cache, MLflow store) lives
under a session temp folder; the root conftest already isolates HOME, TMPDIR and METAFLOW_USER.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

# One OpenMP thread per step process: on a busy 2-core box, spinning threads make t-SNE 3x slower.
THREADS = {"threads": "1"}


@pytest.fixture(scope="session")
def mf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metaflow-runs")


@pytest.fixture(scope="session")
def make_request(mf_root: Path) -> Callable[..., RunRequest]:
    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        options = {**THREADS, **kw.pop("options", {})}
        return RunRequest(
            usecase=usecase, config=cfg, out_dir=mf_root / name, options=options, **kw
        )

    return make


@pytest.fixture(scope="session")
def mlflow_uri(mf_root: Path) -> str:
    return f"sqlite:///{mf_root / 'mlflow' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def digits_run(make_request: Callable[..., RunRequest], mlflow_uri: str) -> RunResult:
    """SimpleNN, 1 epoch on the bundled digits, logged to MLflow from the end step."""
    from mlopsbench.tools.metaflow import runner

    # A 10 % test split (180 images) keeps the t-SNE in evaluate short.
    cfg = DigitsConfig(
        model="simple", epochs=1, threshold=0.5, data=DigitsDataConfig(test_fraction=0.1)
    )
    return runner.run(make_request("digits-ok", cfg, tracking_uri=mlflow_uri))
