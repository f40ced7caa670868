"""Shared ZenML runs: each costs a worker process, a new store and a training, so runs are made
once per session.

No ``__init__.py`` in this folder: as a package, ``tests/tools/zenml`` could shadow the real
``zenml``. Everything a run writes (its ZenML configuration and store, step files, the MLflow
store) lives under a session temp folder; the root conftest already isolates HOME and TMPDIR,
and the adapter gives every run its own ``ZENML_CONFIG_PATH``.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

# One OpenMP thread in the worker: on a busy 2-core box, spinning threads make t-SNE 3x slower.
THREADS = {"threads": "1"}
# The shared digits run: the configuration whose accuracy plain must give too.
DIGITS = DigitsConfig(model="simple", epochs=1, threshold=0.5)
FAIL_STAGE_ENV = "MLOPSBENCH_TEST_FAIL_STAGE"

# Loaded by every Python process started with this folder on PYTHONPATH (the worker, where
# ZenML's local orchestrator runs the steps): wraps the core stage named in
# $MLOPSBENCH_TEST_FAIL_STAGE to raise.
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


def _mlflow_client_for_the_worker() -> None:
    """MLflow's client from MLflow's own environment, after ZenML's packages, for the worker
    processes (the pipeline's last step logs to MLflow there): what ``scripts/run_tests.py``
    and ``mlopsbench run --tracking-uri`` set up, so that ``python -m pytest
    tests/tools/zenml`` in ZenML's environment works on its own too.

    ``envs.integration_env`` looks for environments under ``sys.prefix``, which inside a tool's
    environment is that environment: its siblings are one folder up.
    """
    from mlopsbench.toolkit import envs

    if envs.importable_here(envs.TRACKING_TOOL) or envs.read_record(Path(sys.prefix)) is None:
        return
    mlflow_env = Path(sys.prefix).parent / envs.TRACKING_TOOL
    if envs.read_record(mlflow_env) is None:
        return  # the MLflow test then fails in the worker, saying what is missing
    folder = str(envs.site_packages(mlflow_env))
    sites = [p for p in os.environ.get(envs.EXTRA_SITES_ENV, "").split(os.pathsep) if p]
    os.environ[envs.EXTRA_SITES_ENV] = os.pathsep.join(dict.fromkeys([*sites, folder]))


_mlflow_client_for_the_worker()


@pytest.fixture
def fail_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``fail_stage("mlopsbench.usecases.digits.stages:train_model")``: from then on, that core
    stage raises in every worker this test starts. The pipeline files know nothing of it."""
    folder = tmp_path / "fault-injection"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    def fail(target: str) -> None:
        monkeypatch.setenv(FAIL_STAGE_ENV, target)

    return fail


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
