"""The worker records the deprecations a tool's own packages raise during a run (the
documentation criterion's evidence), and nothing from elsewhere."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

from mlopsbench.bench import worker


def _caught(category: type[Warning], filename: str, text: str = "old API") -> SimpleNamespace:
    return SimpleNamespace(message=category(text), filename=filename)


def test_only_the_tools_installed_packages_count() -> None:
    caught = [
        _caught(DeprecationWarning, "/env/lib/python3.11/site-packages/mlflow/tracking/x.py"),
        _caught(DeprecationWarning, "/env/lib/python3.11/site-packages/mlflow/models/y.py"),
        _caught(FutureWarning, "/env/lib/python3.11/site-packages/mlflow/z.py", "will change"),
        _caught(UserWarning, "/env/lib/python3.11/site-packages/mlflow/z.py", "not a deprecation"),
        # mlopsbench's own folder named after the tool is not the tool
        _caught(DeprecationWarning, "/work/src/mlopsbench/tools/mlflow/adapter.py"),
        _caught(DeprecationWarning, "/env/lib/python3.11/site-packages/pandas/core.py"),
    ]
    found = worker._tool_deprecations(caught, ("mlflow",))
    assert found == [
        {"category": "DeprecationWarning", "message": "old API", "package": "mlflow"},
        {"category": "FutureWarning", "message": "will change", "package": "mlflow"},
    ]


def test_a_tools_own_deprecation_subclass_counts() -> None:
    class RemovedInToolFourWarning(DeprecationWarning):
        pass

    caught = [_caught(RemovedInToolFourWarning, "/e/site-packages/airflow/models/dag.py")]
    (found,) = worker._tool_deprecations(caught, ("airflow",))
    assert found["category"] == "RemovedInToolFourWarning"


def test_the_context_collects_during_the_run_and_restores_filters() -> None:
    before = list(warnings.filters)
    with worker._deprecations("plain") as seen:
        warnings.warn("plain has no packages", DeprecationWarning, stacklevel=1)
    assert seen == []  # the baseline declares no tool package
    assert warnings.filters == before
