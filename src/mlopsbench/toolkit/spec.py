"""The one declaration every tool makes about itself (``TOOL = Tool(...)`` in its folder).

Everything outside a tool's folder — the CLI, ``mlopsbench tools``, ``doctor``, the install
measurement, the instrumentation count, the report's charts and services table, the CI path
filters — reads these fields; nothing else names a tool. Declarations import nothing heavy:
the adapter and the CLI extras are modules imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from mlopsbench.errors import ToolUnavailableError

PIPELINE_PATTERNS = ("*.py", "*.yaml", "*.yml")


@dataclass(frozen=True)
class Tool:
    """What mlopsbench needs to know about one MLOps tool."""

    name: str  # the CLI's name: mlopsbench run digits --tool <name>
    title: str  # as the tool spells itself: "MLflow"
    description: str  # one line: what a run of this tool does
    package: str  # the tool folder's module: "mlopsbench.tools.mlflow"
    distributions: tuple[str, ...]  # PyPI distributions a user installs (versions, installs)
    api_packages: tuple[str, ...]  # import names whose use counts as instrumentation
    adapter: str = "adapter"  # submodule: run(request) -> RunResult, evidence(result)
    # Submodule running the sweep scenario through the tool's own fan-out: run(request) ->
    # RunResult, evidence(result). None: the tool has no sweep (``run sweep`` says so).
    sweep: str | None = None
    pipeline: str = "pipeline"  # folder of what a user of the tool writes and copies
    commands: str | None = None  # submodule with typer commands: server / serve / app
    server_probe: str | None = None  # "module:function" timing the server to healthy
    colour: str = "#888888"  # in the report's charts
    ui: str = "none"  # what a person browses the results in
    services: tuple[str, ...] = ()  # what must run before that UI shows anything
    services_note: str = ""
    # Names of tool objects passed around untyped (``client: Any``) -> the API they stand for.
    conventional_instances: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ci_paths: tuple[str, ...] = ()  # extra paths (beyond its folder) whose change runs its CI job
    # Named ways to run the same pipeline, selectable as ``TOOL@VARIANT`` in ``compare --tools``
    # (e.g. ``airflow@celery``): each is the run options (``RunRequest.options``) it sets.
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def requires(self) -> tuple[str, ...]:
        """Import names that must be installed to run the tool (the core always needs torch)."""
        return (*self.api_packages, "torch")

    @property
    def folder(self) -> Path:
        """The tool's source folder."""
        module = importlib.import_module(self.package)
        return Path(module.__file__ or "").resolve().parent

    @property
    def pipeline_folder(self) -> Path:
        return self.folder / self.pipeline

    def pipeline_files(self) -> list[Path]:
        """The copyable pipeline: the Python and YAML files in ``pipeline/``."""
        folder = self.pipeline_folder
        if not folder.is_dir():
            return []
        found = [p for pattern in PIPELINE_PATTERNS for p in folder.rglob(pattern)]
        return sorted(p for p in found if "__pycache__" not in p.parts)

    def import_adapter(self) -> ModuleType:
        """The adapter module; a missing package is a one-line ToolUnavailableError."""
        return self._import(self.adapter)

    def import_runner_module(self, usecase: str) -> ModuleType:
        """The module whose ``run(request)`` runs ``usecase``: the sweep module for the sweep
        scenario, the adapter for the paper's use cases."""
        from mlopsbench.errors import ConfigError
        from mlopsbench.usecases.registry import SCENARIO_NAMES

        if usecase not in SCENARIO_NAMES:
            return self.import_adapter()
        if not self.sweep:
            raise ConfigError(f"tool {self.name!r} has no {usecase} pipeline")
        return self._import(self.sweep)

    def import_commands(self) -> ModuleType | None:
        return self._import(self.commands) if self.commands else None

    def probe(self) -> Callable[[Path], dict[str, Any]] | None:
        if not self.server_probe:
            return None
        module, _, function = self.server_probe.partition(":")
        return getattr(self._import(module), function)  # type: ignore[no-any-return]

    def facts(self) -> dict[str, Any]:
        """What a report needs to show the tool without importing it (recorded in results)."""
        return {
            "title": self.title,
            "description": self.description,
            "distributions": list(self.distributions),
            "colour": self.colour,
            "ui": self.ui,
            "services": list(self.services),
            "services_note": self.services_note,
        }

    def _import(self, submodule: str) -> ModuleType:
        name = f"{self.package}.{submodule}"
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or str(exc)
            raise ToolUnavailableError(
                f"tool {self.name!r} is not available: {missing} is not installed"
            ) from None
