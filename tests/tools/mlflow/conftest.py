"""Shared MLflow runs: one store, a run that passes its gate and one that fails it.

Each pipeline run trains and evaluates for real (SimpleNN, 1 epoch on the bundled digits), so
the folder runs them once per session and every test reads the same store back. No test folder
here is a package: ``tests/tools/mlflow/__init__.py`` would shadow the real ``mlflow``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mlopsbench
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig

# SimpleNN reaches ~0.85-0.9 after one epoch: 0.5 passes for sure, 1.0 fails for sure.
PASSING = DigitsConfig(model="simple", epochs=1, threshold=0.5)
FAILING = DigitsConfig(model="simple", epochs=1, threshold=1.0)


@dataclass(frozen=True)
class Store:
    """A runs folder whose default MLflow store is ``<root>/mlflow/mlflow.db``."""

    root: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"

    def request(self, name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        out = self.root / name
        out.mkdir(parents=True, exist_ok=True)
        return RunRequest(usecase=usecase, config=cfg, out_dir=out, **kw)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before each test and its fixtures: no loaded model's code folder shadows mlopsbench.

    MLflow's pyfunc loader puts a loaded model's code folder first on ``sys.path`` for good
    (``_add_code_to_system_path``), and our models ship part of mlopsbench there. This process
    keeps the package it imported first, but a process it spawns (the sweep's trial pool) takes
    the parent's path and would import that part, without ``mlopsbench.tools``.
    """
    del item
    real = Path(mlopsbench.__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not _shadows_package(p, real)]


def _shadows_package(entry: str, real: Path) -> bool:
    candidate = Path(entry or ".") / "mlopsbench"
    return candidate.is_dir() and candidate.resolve() != real


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    # No chdir: the adapter derives every path from the run folder (a session-wide chdir
    # would also move every other test's working directory).
    return Store(tmp_path_factory.mktemp("mlflow-runs"))


@pytest.fixture(scope="session")
def passed_run(store: Store) -> RunResult:
    from mlopsbench.tools.mlflow import adapter

    return adapter.run(store.request("digits-pass", PASSING))


@pytest.fixture(scope="session")
def rejected_run(store: Store, passed_run: RunResult) -> RunResult:
    """Runs after ``passed_run``: a champion exists that must not move."""
    from mlopsbench.tools.mlflow import adapter

    return adapter.run(store.request("digits-fail", FAILING))
