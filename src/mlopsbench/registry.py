"""The one registry of tools: name -> lazily imported runner module.

Nothing here imports a tool. ``load_runner(name)`` imports ``<module>`` only when asked and
returns its ``run(request) -> RunResult`` function; a missing package becomes a one-line
ToolUnavailableError.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from mlopsbench.errors import ConfigError, ToolUnavailableError
from mlopsbench.result import RunRequest, RunResult

Runner = Callable[[RunRequest], RunResult]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    module: str  # module exposing ``run(request) -> RunResult``
    requires: tuple[str, ...]  # top-level import names that must be installed
    description: str
    pipeline_files: tuple[str, ...] = ()  # tool-specific source files (for the LOC count)


TOOLS: dict[str, ToolSpec] = {
    "plain": ToolSpec(
        "plain",
        "mlopsbench.tools.plain",
        ("torch",),
        "No MLOps tool: the baseline every overhead is measured against",
        ("tools/plain.py",),
    ),
    "mlflow": ToolSpec(
        "mlflow",
        "mlopsbench.tools.mlflow.runner",
        ("mlflow", "torch"),
        "MLflow tracking, model registry with a gated 'champion' alias",
        ("tools/mlflow", "tracking.py"),  # the MLflow calls live in the shared helper
    ),
    "metaflow": ToolSpec(
        "metaflow",
        "mlopsbench.tools.metaflow.runner",
        ("metaflow", "torch"),
        "Metaflow FlowSpec run through the Runner API, with cards",
        ("tools/metaflow",),
    ),
    "airflow": ToolSpec(
        "airflow",
        "mlopsbench.tools.airflow.runner",
        ("airflow", "torch"),
        "Airflow 3 TaskFlow DAG run with dag.test() on an isolated SQLite home",
        ("tools/airflow",),
    ),
    "kfp": ToolSpec(
        "kfp",
        "mlopsbench.tools.kfp.runner",
        ("kfp", "torch"),
        "Kubeflow Pipelines v2 components run by the local SubprocessRunner",
        ("tools/kfp",),
    ),
}

TOOL_NAMES = tuple(TOOLS)


def get_spec(name: str) -> ToolSpec:
    key = name.strip().lower()
    if key not in TOOLS:
        raise ConfigError(f"unknown tool {name!r}; choose one of: {', '.join(TOOLS)}")
    return TOOLS[key]


def missing_requirements(name: str) -> list[str]:
    """Import names the tool needs that are not installed (checked without importing them)."""
    return [mod for mod in get_spec(name).requires if importlib.util.find_spec(mod) is None]


def is_available(name: str) -> bool:
    spec = get_spec(name)
    return not missing_requirements(name) and importlib.util.find_spec(spec.module) is not None


def load_runner(name: str) -> Runner:
    spec = get_spec(name)
    missing = missing_requirements(name)
    if missing:
        raise ToolUnavailableError(
            f"tool {name!r} needs {', '.join(missing)}; install the project's lock file "
            "(pip install -r requirements.lock)"
        )
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        raise ToolUnavailableError(f"tool {name!r} is not available: {exc}") from exc
    runner = getattr(module, "run", None)
    if not callable(runner):
        raise ToolUnavailableError(f"tool module {spec.module} has no run(request) function")
    return runner  # type: ignore[no-any-return]
