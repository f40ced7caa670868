"""Shared DVC runs: each run is a git + DVC project whose stages are processes, so runs are made
once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/dvc`` could shadow the real
``dvc``. Everything a run writes (the project, DVC's site cache, the MLflow store) lives under a
session temp folder; the root conftest already isolates HOME and TMPDIR (so git has no user
identity here, and the adapter sets the project's own).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

# One OpenMP thread per stage process: on a busy 2-core box, spinning threads slow t-SNE a lot.
THREADS = {"threads": "1"}
NO_EXPERIMENT = {"experiment": "none"}


@pytest.fixture(scope="session")
def dvc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dvc-runs")


@pytest.fixture(scope="session")
def make_request(dvc_root: Path) -> Callable[..., RunRequest]:
    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        options = {**THREADS, **kw.pop("options", {})}
        return RunRequest(
            usecase=usecase, config=cfg, out_dir=dvc_root / name, options=options, **kw
        )

    return make


@pytest.fixture(scope="session")
def mlflow_uri(dvc_root: Path) -> str:
    return f"sqlite:///{dvc_root / 'mlflow' / 'mlflow.db'}"


@pytest.fixture(scope="session")
def digits_run(make_request: Callable[..., RunRequest], mlflow_uri: str) -> RunResult:
    """SimpleNN, 1 epoch on the bundled digits, past its gate, logged to MLflow from the
    evaluate stage; then the no-op repro and the default experiment (a stricter gate)."""
    from mlopsbench.tools.dvc import adapter

    # A 10 % test split (180 images) keeps the t-SNE in evaluate short.
    cfg = DigitsConfig(
        model="simple", epochs=1, threshold=0.5, data=DigitsDataConfig(test_fraction=0.1)
    )
    return adapter.run(make_request("digits-ok", cfg, tracking_uri=mlflow_uri))
