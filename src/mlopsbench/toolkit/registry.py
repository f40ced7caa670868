"""The tools mlopsbench knows: one registration line each, plus any named in $MLOPSBENCH_TOOLS.

A tool is a package whose ``__init__`` declares ``TOOL = Tool(...)`` (see ``tools/spec.py``).
Built-in tools are listed in ``BUILTIN``; a tool kept elsewhere (your own, or a test's toy
tool) joins with ``MLOPSBENCH_TOOLS=my_package.my_tool[,other.tool]`` — the variable reaches
the worker processes ``compare`` starts, so they find it too. Reading the declarations imports
no tool.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from functools import cache

from mlopsbench.errors import ConfigError, ToolUnavailableError
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.spec import Tool

BUILTIN = (
    "mlopsbench.tools.plain",
    "mlopsbench.tools.mlflow",
    "mlopsbench.tools.metaflow",
    "mlopsbench.tools.airflow",
    "mlopsbench.tools.kfp",
    "mlopsbench.tools.dagster",
    "mlopsbench.tools.wandb",
    "mlopsbench.tools.dvc",
    "mlopsbench.tools.prefect",
    "mlopsbench.tools.zenml",
)
EXTRA_TOOLS_ENV = "MLOPSBENCH_TOOLS"

Runner = Callable[[RunRequest], RunResult]


def tools() -> dict[str, Tool]:
    """Every declared tool by name, built-in first (plain, the baseline, leads)."""
    return dict(_load(os.environ.get(EXTRA_TOOLS_ENV, "")))


@cache
def _load(extra: str) -> tuple[tuple[str, Tool], ...]:
    packages = [*BUILTIN, *(p.strip() for p in extra.split(",") if p.strip())]
    declared: dict[str, Tool] = {}
    for package in packages:
        tool = _declaration(package)
        if tool.name in declared:
            raise ConfigError(f"two tools are named {tool.name!r} ({package})")
        declared[tool.name] = tool
    return tuple(declared.items())


def _declaration(package: str) -> Tool:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(f"cannot import tool package {package!r}: {exc}") from None
    tool = getattr(module, "TOOL", None)
    if not isinstance(tool, Tool):
        raise ConfigError(f"tool package {package!r} declares no TOOL = Tool(...)")
    return tool


def tool_names() -> tuple[str, ...]:
    return tuple(tools())


def get_tool(name: str) -> Tool:
    declared = tools()
    key = name.strip().lower()
    if key not in declared:
        raise ConfigError(f"unknown tool {name!r}; choose one of: {', '.join(declared)}")
    return declared[key]


def installed(module: str) -> bool:
    """Whether ``module`` is an installed module or package, found without importing it.

    A namespace package does not count: a folder that merely shares the name (the test
    folder ``tests/tools/mlflow`` on pytest's path) is not the tool.
    """
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is not None


def missing_requirements(name: str) -> list[str]:
    """Import names the tool needs that are not installed (checked without importing them)."""
    return [mod for mod in get_tool(name).requires if not installed(mod)]


def is_available(name: str) -> bool:
    return not missing_requirements(name)


def load_runner(name: str, usecase: str = "digits") -> Runner:
    """The ``run(request)`` of the tool's module for ``usecase`` (the adapter, or the sweep
    module for the sweep scenario); a missing package is one ToolUnavailableError line."""
    tool = get_tool(name)
    missing = missing_requirements(name)
    if missing:
        raise ToolUnavailableError(
            f"tool {name!r} needs {', '.join(missing)}; install its environment "
            "(pip install -r requirements.lock)"
        )
    module = tool.import_runner_module(usecase)
    runner = getattr(module, "run", None)
    if not callable(runner):
        raise ToolUnavailableError(f"{module.__name__} has no run(request) function")
    return runner  # type: ignore[no-any-return]
