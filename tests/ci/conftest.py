"""Fixtures for the CI tests (helpers live in ci_support.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ci_support import CORE, glob_regex, load_filter_table, load_workflow


@pytest.fixture(scope="session")
def filter_table() -> dict[str, list[str]]:
    return load_filter_table()


@pytest.fixture(scope="session")
def tool_filters(filter_table: dict[str, list[str]]) -> list[str]:
    """The tool jobs the table drives (every key but the shared core)."""
    return [name for name in filter_table if name != CORE]


@pytest.fixture(scope="session")
def workflow() -> dict[str, Any]:
    return load_workflow()


@pytest.fixture(scope="session")
def triggered(
    tool_filters: list[str], filter_table: dict[str, list[str]]
) -> Callable[[str], set[str]]:
    """``triggered(path)`` -> the tool jobs a change to ``path`` runs."""
    compiled = {name: [glob_regex(p) for p in filter_table[name]] for name in tool_filters}

    def match(path: str) -> set[str]:
        return {name for name, regexes in compiled.items() if any(r.match(path) for r in regexes)}

    return match
