"""Shared W&B runs: each one trains and evaluates for real, so they are made once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/wandb`` could shadow the real
``wandb``. Every run is offline and keeps its files under a session temp folder (the adapter
points wandb's run, data, cache and config folders there); the root conftest already isolates
HOME and TMPDIR.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig

# The brief's comparison config (plain gives 0.8750); 0.5 passes for sure, 1.0 fails for sure.
PASSING = DigitsConfig(model="simple", epochs=1, threshold=0.5)
FAILING = DigitsConfig(model="simple", epochs=1, threshold=1.0)


@pytest.fixture(scope="session")
def wb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wandb-runs")


@pytest.fixture(scope="session")
def make_request(wb_root: Path) -> Callable[..., RunRequest]:
    """A request whose run folder exists, as the CLI makes it."""

    def make(name: str, cfg: Any, usecase: str = "digits", **kw: Any) -> RunRequest:
        out = wb_root / name
        out.mkdir(parents=True, exist_ok=True)
        return RunRequest(usecase=usecase, config=cfg, out_dir=out, **kw)

    return make


@pytest.fixture(scope="session")
def passed_run(make_request: Callable[..., RunRequest]) -> RunResult:
    from mlopsbench.tools.wandb import adapter

    return adapter.run(make_request("digits-pass", PASSING))


@pytest.fixture(scope="session")
def rejected_run(make_request: Callable[..., RunRequest]) -> RunResult:
    from mlopsbench.tools.wandb import adapter

    return adapter.run(make_request("digits-fail", FAILING))
