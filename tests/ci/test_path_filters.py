"""The path-filter table (.github/path-filters.yml): which changed files trigger which tool jobs,
and that the table cannot drift from the folder layout, the tool registry or the workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from ci_support import CORE, FILTERS, REPO, flatten, glob_regex

from mlopsbench.toolkit.registry import tools

TOOLS_DIR = REPO / "src" / "mlopsbench" / "tools"
ALL = {name for name in tools() if name != "plain"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # A tool's own code or tests: that tool only.
        ("src/mlopsbench/tools/kfp/pipelines.py", {"kfp"}),
        ("src/mlopsbench/tools/kfp/components/train.py", {"kfp"}),
        ("tests/tools/kfp/test_compile.py", {"kfp"}),
        ("src/mlopsbench/tools/mlflow/adapter.py", {"mlflow"}),
        ("tests/tools/mlflow/test_registry.py", {"mlflow"}),
        ("src/mlopsbench/tools/metaflow/pipeline/digits_flow.py", {"metaflow"}),
        ("src/mlopsbench/tools/airflow/pipeline/mlopsbench_digits.py", {"airflow"}),
        ("tests/tools/airflow/test_dagbag.py", {"airflow"}),
        # The shared core: every tool.
        ("src/mlopsbench/usecases/digits/train.py", ALL),
        ("src/mlopsbench/usecases/sentiment/stages.py", ALL),
        ("src/mlopsbench/usecases/common/gate.py", ALL),
        ("src/mlopsbench/tracking/models.py", ALL),
        ("src/mlopsbench/result.py", ALL),
        ("src/mlopsbench/cli/run.py", ALL),
        ("src/mlopsbench/toolkit/record.py", ALL),
        ("src/mlopsbench/support/processes.py", ALL),
        ("src/mlopsbench/tools/plain/adapter.py", ALL),
        ("src/mlopsbench/tools/__init__.py", ALL),
        ("pyproject.toml", ALL),
        ("requirements.lock", ALL),
        ("tests/conftest.py", ALL),
        (".github/path-filters.yml", ALL),
        (".github/workflows/pipelines.yml", ALL),
        (".github/actions/setup-mlopsbench/action.yml", ALL),
        # Neither a tool nor the core: no tool job (the always-on core job still lints/tests it).
        ("README.md", set()),
        ("docs/results.md", set()),
        ("src/mlopsbench/report/html.py", set()),
        ("src/mlopsbench/bench/harness.py", set()),
        ("tests/bench/test_doctor.py", set()),
        ("tests/usecases/digits/test_train.py", set()),
        # Look-alikes: a prefix is not a folder, `*` does not cross folders.
        ("src/mlopsbench/tools/mlflow_extra.py", set()),
        ("src/mlopsbench/tools/kfpx/pipelines.py", set()),
        ("tests/tools/kfp_test.py", set()),
        ("src/mlopsbench/other/pyproject.toml", set()),
    ],
)
def test_changed_file_triggers(
    path: str, expected: set[str], triggered: Callable[[str], set[str]]
) -> None:
    assert triggered(path) == expected


def test_glob_matcher_semantics() -> None:
    """The cases picomatch (dorny/paths-filter) decides this way, as the table relies on."""
    assert glob_regex("src/a/**").match("src/a/b/c.py")
    assert glob_regex("src/*.py").match("src/x.py")
    assert not glob_regex("src/*.py").match("src/a/x.py")
    assert glob_regex("src/**/x.py").match("src/x.py")
    assert glob_regex(".github/**").match(".github/workflows/a.yml")


def test_table_covers_every_tool_folder(tool_filters: list[str]) -> None:
    folders = {
        p.name for p in TOOLS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    }
    folders -= {"plain"}  # the baseline is shared code: every tool is compared with it
    assert folders, "no tool folders found"
    assert set(tool_filters) == folders, (
        f"{FILTERS.name} must have one filter per folder of src/mlopsbench/tools "
        f"(missing: {sorted(folders - set(tool_filters))}, stale: {sorted(set(tool_filters) - folders)})"
    )


def test_every_declared_tool_is_covered(
    tool_filters: list[str], triggered: Callable[[str], set[str]]
) -> None:
    """A declared tool has its own filter, except the baseline, which the core filter holds."""
    for name, tool in tools().items():
        if name == "plain":
            assert triggered(f"src/mlopsbench/tools/{name}/adapter.py") == set(tool_filters)
            continue
        assert name in tool_filters, f"tool {name!r} has no filter in {FILTERS.name}"
        for path in tool.ci_paths:  # what its declaration says also runs its job
            assert name in triggered(path), f"{path} must trigger the {name} job"


@pytest.mark.parametrize("tool", sorted(ALL))
def test_each_tool_filter_has_core_its_code_and_its_tests(
    tool: str, filter_table: dict[str, list[str]]
) -> None:
    patterns = filter_table[tool]
    assert set(filter_table[CORE]) <= set(patterns), f"{tool} must include *{CORE}"
    assert f"src/mlopsbench/tools/{tool}/**" in patterns
    assert f"tests/tools/{tool}/**" in patterns


def test_patterns_use_only_syntax_the_tests_model(filter_table: dict[str, list[str]]) -> None:
    """No negation, braces or classes: the matcher above would silently disagree with picomatch."""
    for name, patterns in filter_table.items():
        for pattern in patterns:
            assert not set(pattern) & set("!{}[]"), f"{name}: unsupported glob {pattern!r}"
            top = pattern.split("/", 1)[0]
            assert (REPO / top).exists(), f"{name}: {pattern!r} points outside the repository"


def test_workflow_filters_are_the_table(
    workflow: dict[str, Any], filter_table: dict[str, list[str]], tool_filters: list[str]
) -> None:
    """The changes job reads this very file, and exposes exactly its tool filters as outputs."""
    changes = workflow["jobs"]["changes"]
    steps = [
        s for s in changes["steps"] if str(s.get("uses", "")).startswith("dorny/paths-filter@")
    ]
    assert len(steps) == 1, "the changes job needs exactly one dorny/paths-filter step"
    step = steps[0]
    filters = step["with"]["filters"]
    if isinstance(filters, str) and "\n" not in filters:
        assert (REPO / filters).resolve() == FILTERS.resolve()
    else:  # inline filters: they must say exactly what the table says
        inline = {k: flatten(v) for k, v in yaml.safe_load(filters).items()}
        assert inline == filter_table
    assert changes["outputs"] == {
        name: f"${{{{ steps.{step['id']}.outputs.{name} }}}}" for name in tool_filters
    }
