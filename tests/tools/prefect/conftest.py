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
import textwrap
from collections.abc import Callable, Iterator
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

FAIL_STAGE_ENV = "MLOPSBENCH_TEST_FAIL_STAGE"
FAIL_ONCE_ENV = "MLOPSBENCH_TEST_FAIL_ONCE"  # a marker file: fail only while it does not exist

# Loaded by every Python process started with this folder on PYTHONPATH (the adapter's worker):
# wraps the core stage named in $MLOPSBENCH_TEST_FAIL_STAGE ("module:function:ErrorName") to
# raise; with $MLOPSBENCH_TEST_FAIL_ONCE, only the first call does (a transient fault).
SITECUSTOMIZE = textwrap.dedent(
    f"""
    import os

    _target = os.environ.get("{FAIL_STAGE_ENV}", "")
    if _target:
        import functools
        import importlib

        import mlopsbench.errors

        _module_name, _stage, _error = _target.split(":")
        _module = importlib.import_module(_module_name)
        _original = getattr(_module, _stage)
        _error_class = getattr(mlopsbench.errors, _error, RuntimeError)

        @functools.wraps(_original)
        def _failing(*args, **kwargs):
            marker = os.environ.get("{FAIL_ONCE_ENV}")
            if marker and os.path.exists(marker):
                return _original(*args, **kwargs)
            if marker:
                open(marker, "w").close()
            raise _error_class(f"injected failure in {{_stage}}")

        setattr(_module, _stage, _failing)
    """
)


@pytest.fixture
def fail_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``fail_stage("mlopsbench.usecases.digits.stages:train_model", "DataError", once=False)``:
    from then on that core stage raises in the worker processes this test starts. The
    pipeline files know nothing of it."""
    folder = tmp_path / "fault-injection"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    def fail(target: str, error: str = "RuntimeError", once: bool = False) -> None:
        monkeypatch.setenv(FAIL_STAGE_ENV, f"{target}:{error}")
        if once:
            monkeypatch.setenv(FAIL_ONCE_ENV, str(folder / "failed-once"))

    yield fail


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
