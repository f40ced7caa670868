"""Which core code travels with a logged model (MLflow ``code_paths``), found by reading imports.

A registered model runs its use case's ``serving`` module (``Predictor``), which the model file
imports by name. That module and every mlopsbench module it imports, at any depth and also inside
functions (a lazily imported module is still needed when its function runs), are copied with the
model, package layout kept: it loads where only its ``requirements.txt`` is installed, and still
runs the core's one implementation of the architectures and of inference.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

from mlopsbench.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/mlopsbench
ALWAYS_SHIPPED = ("mlopsbench.errors",)  # the model file's own error messages


def core_modules(usecase: str) -> list[str]:
    """The mlopsbench modules a ``usecase`` model needs to predict, with their packages, sorted."""
    from mlopsbench.usecases.registry import get_usecase

    try:
        serving = get_usecase(usecase).serving_module
    except ConfigError:
        raise ConfigError(f"no model packaging for use case {usecase!r}") from None
    todo = [serving, *ALWAYS_SHIPPED]
    found: set[str] = set()
    while todo:
        module = todo.pop()
        if module in found:
            continue
        found.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages
        todo += imported_core_modules(module)
    return sorted(found)


def module_source(module: str) -> Path:
    """The .py file of an mlopsbench module or package (this checkout's or install's)."""
    path = _source_file(module)
    if path is None:
        raise ConfigError(f"core module {module} has no source file under {PACKAGE_ROOT}")
    return path


def _source_file(module: str) -> Path | None:
    base = PACKAGE_ROOT.joinpath(*module.split(".")[1:])
    return next((p for p in (base / "__init__.py", base.with_suffix(".py")) if p.is_file()), None)


def _imports(module: str) -> list[str]:
    """Every module name ``module`` imports, anywhere in it (``from pkg import x`` gives both
    ``pkg`` and ``pkg.x``: ``x`` may be a module)."""
    path = module_source(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def imported_core_modules(module: str) -> list[str]:
    """The mlopsbench modules ``module`` imports (not the names of functions or classes)."""
    core = [n for n in _imports(module) if n == "mlopsbench" or n.startswith("mlopsbench.")]
    return [n for n in core if _source_file(n) is not None]


def imported_libraries(modules: list[str]) -> set[str]:
    """Top-level third-party import names used anywhere in ``modules``."""
    roots = {name.split(".")[0] for module in modules for name in _imports(module)}
    return {r for r in roots if r and r != "mlopsbench" and r not in sys.stdlib_module_names}


def stage_core_code(usecase: str, staging: str | Path) -> Path:
    """Copy :func:`core_modules` to ``<staging>/mlopsbench/…`` (package layout kept); return it.

    MLflow copies that folder to the model's ``code/`` and puts ``code/`` on ``sys.path`` on load.
    """
    root = Path(staging) / "mlopsbench"
    for module in core_modules(usecase):
        source = module_source(module)
        target = root / source.relative_to(PACKAGE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return root
