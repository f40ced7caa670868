"""The paper's flexibility and interoperability criteria as checklists a test must exercise.

An item holds for a tool only when a test runs it on that tool: the test carries the marker
``@pytest.mark.capability("<tool>", "<item>", ...)`` and runs in CI (which skips nothing). The
report reads the catalogue of marked tests (``capabilities.json``, rebuilt from the test files
by ``python scripts/capabilities.py`` and checked against them by a test), so every ✓ names the
test that earned it. Score of a checklist = items held / items, on the paper's 0-10 scale.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "capability"
EVERY_TOOL = "*"  # a test parametrised over every declared tool checks the item for each


@dataclass(frozen=True)
class Item:
    key: str
    title: str
    meaning: str  # what a test must do for the item to hold


FLEXIBILITY = (
    Item("typed_parameters", "Typed parameters", "a run takes typed, validated parameters"),
    Item("conditional_branch", "Conditional branch", "a step runs or is skipped on a result"),
    Item("fan_out_in", "Fan-out / fan-in", "parallel tasks whose results one task joins"),
    Item("dynamic_task_count", "Dynamic task count", "the number of tasks is set at run time"),
    Item("retries_backoff", "Retries with back-off", "a failing step is retried and succeeds"),
    Item("resume_cache", "Resume / cache", "finished steps are not re-run after a failure"),
    Item("schedule", "Schedule", "a schedule is declared and accepted by the tool"),
    Item("resource_hint", "Per-step resources", "a step's CPU/memory request reaches the tool"),
)
INTEROPERABILITY = (
    Item("mlflow_tracking", "Logs to MLflow", "a run logs to an MLflow tracking server"),
    Item("remote_trigger", "REST/CLI trigger", "a run is started over a REST API or a CLI"),
    Item("ci_workflow", "CI workflow", "the path-filtered CI workflow runs the tool's job"),
    Item("postgres_store", "PostgreSQL store", "the tool's own store runs on PostgreSQL"),
    Item("cluster_export", "Cluster export", "the pipeline compiles for a cluster scheduler"),
    Item("mlflow_registry", "Model to MLflow", "its model reaches MLflow's registry or serving"),
)
CHECKLISTS = {"flexibility": FLEXIBILITY, "interoperability": INTEROPERABILITY}
ITEM_KEYS = {item.key for items in CHECKLISTS.values() for item in items}
CATALOGUE_FILE = Path(__file__).resolve().parent / "capabilities.json"


@dataclass(frozen=True)
class Claim:
    tool: str
    item: str
    test: str  # tests/tools/airflow/test_sweep.py::test_mapped_trials_run_in_parallel


def scan_tests(tests_root: Path) -> list[Claim]:
    """Every ``@pytest.mark.capability(tool, item, ...)`` on a test function, by reading the
    files (nothing imported). An unknown item is an error: a typo would silently claim nothing."""
    claims: list[Claim] = []
    repo = tests_root.resolve().parent
    for path in sorted(tests_root.rglob("test_*.py")):
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for node, owner in _test_functions(tree):
            for decorator in node.decorator_list:
                args = _marker_args(decorator)
                if args is None:
                    continue
                tool, *items = args
                name = f"{path.resolve().relative_to(repo)}::{owner}{node.name}"
                for item in items:
                    if item not in ITEM_KEYS:
                        raise ValueError(f"{name}: unknown capability item {item!r}")
                    claims.append(Claim(tool, item, name))
    return claims


def catalogue(claims: list[Claim]) -> dict[str, dict[str, list[str]]]:
    """tool -> item -> the tests that exercise it (sorted: a stable file)."""
    found: dict[str, dict[str, list[str]]] = {}
    for claim in claims:
        found.setdefault(claim.tool, {}).setdefault(claim.item, []).append(claim.test)
    return {
        tool: {item: sorted(set(tests)) for item, tests in sorted(items.items())}
        for tool, items in sorted(found.items())
    }


def load_catalogue(path: Path = CATALOGUE_FILE) -> dict[str, dict[str, list[str]]]:
    if not path.is_file():
        return {}
    data: dict[str, dict[str, list[str]]] = json.loads(path.read_text("utf-8"))
    return data


def checklist(tool: str, name: str, found: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """One tool's checklist: each item with its tests (empty: not held), and the score."""
    items = CHECKLISTS[name]
    own, every = found.get(tool, {}), found.get(EVERY_TOOL, {})
    rows = [
        {"key": i.key, "title": i.title, "tests": [*own.get(i.key, []), *every.get(i.key, [])]}
        for i in items
    ]
    count = sum(1 for row in rows if row["tests"])
    return {"items": rows, "held": count, "total": len(items), "score": 10.0 * count / len(items)}


def _test_functions(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef, str]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            yield node, ""
        elif isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef) and inner.name.startswith("test"):
                    yield inner, f"{node.name}::"


def _marker_args(decorator: ast.expr) -> list[str] | None:
    """``pytest.mark.capability("airflow", "fan_out_in")`` -> its string arguments."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    if not (isinstance(func, ast.Attribute) and func.attr == MARKER):
        return None
    args = [a.value for a in decorator.args if isinstance(a, ast.Constant)]
    if (
        len(args) != len(decorator.args)
        or len(args) < 2
        or not all(isinstance(a, str) for a in args)
    ):
        raise ValueError(f"line {decorator.lineno}: capability(tool, item, ...) takes strings")
    return [str(a) for a in args]
