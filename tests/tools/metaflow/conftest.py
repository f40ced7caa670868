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


@pytest.fixture
def declared_parameters() -> Callable[[str], dict[str, Any]]:
    """``declared_parameters("digits")``: the flow's Parameters by name, as Metaflow sees them."""
    return _declared_parameters


def _declared_parameters(usecase: str) -> dict[str, Any]:
    """Import the flow file afresh and let Metaflow apply its mutators (``@config_parameters``
    adds the core's settings): the processing ``run``, ``run --help`` and the Runner go through.
    """
    import importlib.util
    import inspect

    from metaflow import FlowSpec
    from metaflow.parameters import flow_context

    from mlopsbench.tools.metaflow.launch import flow_file

    path = flow_file(usecase)
    spec = importlib.util.spec_from_file_location(f"_test_flow_{usecase}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (flow,) = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, FlowSpec) and cls.__module__ == module.__name__
    ]
    with flow_context(flow):  # what Metaflow's CLI and Runner set up around this
        flow._process_config_decorators({})
        return {param.name: param for _, param in flow._get_parameters()}


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
    from mlopsbench.tools.metaflow import adapter

    # A 10 % test split (180 images) keeps the t-SNE in evaluate short.
    cfg = DigitsConfig(
        model="simple", epochs=1, threshold=0.5, data=DigitsDataConfig(test_fraction=0.1)
    )
    return adapter.run(make_request("digits-ok", cfg, tracking_uri=mlflow_uri))
