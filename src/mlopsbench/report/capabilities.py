"""The flexibility and interoperability checklists as grids, the tests behind every ✓, and the
documentation criterion's evidence (deprecations seen, API changes the paper's code hits)."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from mlopsbench.report.aggregate import Summary
from mlopsbench.report.document import Bullets, Section, Table
from mlopsbench.report.matrix import PaperMatrix
from mlopsbench.report.measured import catalogue_of
from mlopsbench.toolkit.capabilities import CHECKLISTS, checklist
from mlopsbench.toolkit.envs import base_tool

DASH = "–"
HELD, NOT_HELD = "✓", "✗"


def _tools(summary: Summary) -> list[str]:
    """The tools of the compare, once per pipeline (versions and variants share one), no plain."""
    return list(dict.fromkeys(base_tool(t) for t in summary.tools if base_tool(t) != "plain"))


def checklist_section(summary: Summary, matrix: PaperMatrix) -> Section:
    sec = Section("Flexibility and interoperability, exercised", "checklists")
    sec.blocks.append(
        "Each ✓ is a test that does the item with the tool (the appendix names it); CI runs every "
        "test and skips none. ✗: no test does it here — the tool lacks the feature, or it needs a "
        "cluster or a service this machine cannot run. Score = 10 × items held / items, next to "
        "the paper's score for the criterion."
    )
    found = catalogue_of(summary)
    for name, items in CHECKLISTS.items():
        criterion = next((c for c in matrix.criteria if c.key == name), None)
        rows = []
        for tool in _tools(summary):
            result = checklist(tool, name, found)
            cells = [HELD if row["tests"] else NOT_HELD for row in result["items"]]
            paper = f"{criterion.scores[tool]}" if criterion and tool in criterion.scores else DASH
            rows.append(
                (
                    tool,
                    *cells,
                    f"{result['held']}/{result['total']} → {result['score']:.1f}",
                    paper,
                )
            )
        sec.blocks.append(
            Table(
                ("tool", *(item.title for item in items), "measured", "paper"),
                tuple(rows),
                f"{name.capitalize()}: " + "; ".join(f"{i.title} = {i.meaning}" for i in items),
            )
        )
    return sec


def appendix_section(summary: Summary) -> Section:
    sec = Section("Appendix: the test behind each ✓", "checklist-tests")
    found = catalogue_of(summary)
    lines = []
    for tool in _tools(summary):
        for name in CHECKLISTS:
            for row in checklist(tool, name, found)["items"]:
                for test in row["tests"]:
                    lines.append(f"**{tool}** · {row['title']}: `{test}`")
    sec.blocks.append(Bullets(tuple(lines)) if lines else "No capability test is recorded.")
    return sec


def documentation_section(summary: Summary) -> Section:
    sec = Section("Documentation: the paper's score, and what we met in practice", "documentation")
    sec.blocks.append(
        "The documentation score stays the paper's. Beside it: deprecation and future warnings the "
        "tool's own packages raised in these runs (in the harness's worker process; steps a tool "
        "runs in processes of its own are not seen), and the changes the paper's published code "
        "needs on today's versions."
    )
    seen: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    for row in summary.run_rows:
        tool = base_tool(str(row.get("tool")))
        for item in row.get("deprecations") or []:
            seen.setdefault(tool, {})[(item["category"], item["message"])] = item
    rows = []
    for tool in _tools(summary):
        found = list(seen.get(tool, {}).values())
        example = found[0]["message"] if found else DASH
        rows.append((tool, str(len(found)), example))
    sec.blocks.append(
        Table(("tool", "distinct deprecations seen", "first one"), tuple(rows), "In these runs")
    )
    changes = paper_code_changes()
    if changes:
        sec.blocks.append(
            Table(
                ("tool", "paper code", "on", "what changed", "found by"),
                tuple(
                    (c["tool"], c["code"], c["version"], c["change"], c["found_by"])
                    for c in changes
                ),
                "API changes the paper's code hits",
            )
        )
    return sec


def paper_code_changes() -> list[dict[str, Any]]:
    text = resources.files("mlopsbench.report").joinpath("paper_code_changes.toml").read_text()
    changes: list[dict[str, Any]] = tomllib.loads(text).get("change", [])
    return changes
