"""Helpers for the CI tests: paths, the workflow loader, and a glob matcher that behaves like
dorny/paths-filter's (picomatch with ``dot: true``) for the syntax the table uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "pipelines.yml"
FILTERS = REPO / ".github" / "path-filters.yml"
CORE = "core"  # the table's shared-code filter; every tool filter includes it


def flatten(items: Any) -> list[str]:
    """dorny/paths-filter flattens nested lists, which is how `- *core` includes the core list."""
    if isinstance(items, str):
        return [items]
    return [p for item in items for p in flatten(item)]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``**`` crosses folders, ``*`` and ``?`` stay inside one; everything else is literal."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def load_workflow(path: Path = WORKFLOW) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def load_filter_table(path: Path = FILTERS) -> dict[str, list[str]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {name: flatten(patterns) for name, patterns in raw.items()}
