"""Shared DVC runs: each run is a git + DVC project whose stages are processes, so runs are made
once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/dvc`` could shadow the real
``dvc``. Everything a run writes (the project, DVC's site cache, the MLflow store) lives under a
session temp folder; the root conftest already isolates HOME and TMPDIR (so git has no user
identity here, and the adapter sets the project's own).
"""

from __future__ import annotations

import os
import site
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


def _mlflow_client_beside_dvc() -> None:
    """MLflow's client from MLflow's own environment, after DVC's packages: what
    ``scripts/run_tests.py`` and ``mlopsbench run --tracking-uri`` set up, so that
    ``python -m pytest tests/tools/dvc`` in DVC's environment works on its own too (the evaluate
    stage logs to MLflow in its process; the tests read MLflow back in this one).

    ``envs.integration_env`` looks for environments under ``sys.prefix``, which inside a tool's
    environment is that environment: its siblings are one folder up.
    """
    from mlopsbench.toolkit import envs

    if envs.importable_here(envs.TRACKING_TOOL) or envs.read_record(Path(sys.prefix)) is None:
        return
    mlflow_env = Path(sys.prefix).parent / envs.TRACKING_TOOL
    if envs.read_record(mlflow_env) is None:
        return  # the MLflow test then fails on the import, saying what is missing
    folder = str(envs.site_packages(mlflow_env))
    site.addsitedir(folder)
    sites = [p for p in os.environ.get(envs.EXTRA_SITES_ENV, "").split(os.pathsep) if p]
    os.environ[envs.EXTRA_SITES_ENV] = os.pathsep.join(dict.fromkeys([*sites, folder]))


_mlflow_client_beside_dvc()

# One OpenMP thread per stage process: on a busy 2-core box, spinning threads slow t-SNE a lot.
THREADS = {"threads": "1"}
NO_EXPERIMENT = {"experiment": "none"}

FAIL_STAGE_ENV = "MLOPSBENCH_TEST_FAIL_STAGE"

# Loaded by every Python process started with this folder on PYTHONPATH (dvc and every stage
# it starts): wraps the core stage named in $MLOPSBENCH_TEST_FAIL_STAGE to raise.
SITECUSTOMIZE = textwrap.dedent(
    f"""
    import os

    _target = os.environ.get("{FAIL_STAGE_ENV}", "")
    if _target:
        import importlib

        _module_name, _, _stage = _target.partition(":")
        _module = importlib.import_module(_module_name)

        def _failing(*args, **kwargs):
            raise RuntimeError(f"injected failure in {{_stage}}")

        setattr(_module, _stage, _failing)
    """
)


@pytest.fixture
def fail_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``fail_stage("mlopsbench.usecases.digits.stages:evaluate_model")``: from then on, that
    core stage raises in every stage process this test starts (DVC passes its environment on).
    The pipeline files know nothing about it."""
    folder = tmp_path / "fault-injection"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    def fail(target: str) -> None:
        monkeypatch.setenv(FAIL_STAGE_ENV, target)

    yield fail


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
