"""Measured 0-10 scores next to the paper's: transparent formulas over the collected evidence.

Only criteria with something to measure get a measured score; the others keep the paper's score
and are marked as such. Every formula is printed in the report exactly as written here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mlopsbench.report.aggregate import Summary
from mlopsbench.report.matrix import PaperMatrix, weighted_total
from mlopsbench.toolkit.capabilities import CHECKLISTS, checklist, load_catalogue
from mlopsbench.toolkit.envs import base_tool, env_label

# Constants of the instrumentation formula: lines touching the tool's API, distinct API names.
LINES_PER_POINT = 40
SERVICE_PENALTY = 0.25  # points per service that must run before the tool's UI shows a run
API_NAMES_PER_POINT = 10

FORMULAS = {
    "installation": "10 − log2(disk MB / lightest tool's disk MB) − log2(distributions / fewest "
    f"distributions) − {SERVICE_PENALTY} × (services a UI needs), over what each tool's own "
    "environment adds to the shared core (a cold rebuild from the registry with "
    "--measure-install, else the environment the runs used); the services are the tool's "
    "declared ones (services table; those startable here are timed to healthy by "
    "--measure-servers), the paper's 'deploying a UI'",
    "instrumentation": f"10 − (lines touching the tool API) / {LINES_PER_POINT} − (distinct tool API "
    f"names) / {API_NAMES_PER_POINT}; counted with ast over the tool's pipeline/ folder (what "
    "its users write), not its adapter",
    "interpretability": "10 × (evidence items the tool's own store held in every run) / 7: params, "
    "per-epoch metrics, final metrics, model artifact, plots, lineage, run state",
    "flexibility": "10 × (checklist items held) / 8 — typed parameters, conditional branch, "
    "fan-out/fan-in, dynamic task count, retries with back-off, resume/cache, schedule, per-step "
    "resources; an item holds only where a test runs it on the tool (appendix)",
    "interoperability": "10 × (checklist items held) / 6 — logs to MLflow, REST/CLI trigger, CI "
    "workflow, PostgreSQL store, cluster export, model to MLflow; an item holds only where a test "
    "runs it on the tool (appendix)",
    "performance": "10 × (plain median wall time / tool median wall time), mean over models "
    "(not a paper criterion: shown, not weighted)",
}
MEASURABLE = (
    "installation",
    "flexibility",
    "interoperability",
    "instrumentation",
    "interpretability",
)


def _clamp(value: float) -> float:
    return max(0.0, min(10.0, value))


@dataclass(frozen=True)
class MeasuredScore:
    value: float | None  # None: not measured (n/a)
    source: str  # "measured" | "paper" | "n/a"
    detail: str = ""


def installation_scores(
    installs: list[dict[str, Any]], services: dict[str, int] | None = None
) -> dict[str, MeasuredScore]:
    """Per tool environment; ``services``: base tool -> services its UI needs (declared)."""
    services = services or {}
    usable = [
        r
        for r in installs
        if not r.get("error")
        and r.get("disk_mb")
        and r.get("distributions")
        and r.get("cache") != "existing"  # the shared core: every tool's, nobody's score
    ]
    # One row per tool: a cold build from the registry when measured, else the environment.
    preferred = {r["tool"]: r for r in usable if r.get("cache") != "cold"}
    preferred.update({r["tool"]: r for r in usable if r.get("cache") == "cold"})
    good = list(preferred.values())
    if not good:
        return {}
    min_mb = min(float(r["disk_mb"]) for r in good)
    min_n = min(int(r["distributions"]) for r in good)
    scores = {}
    for r in good:
        needed = services.get(base_tool(str(r["tool"])), 0)
        value = (
            10
            - math.log2(float(r["disk_mb"]) / min_mb)
            - math.log2(int(r["distributions"]) / min_n)
            - SERVICE_PENALTY * needed
        )
        scores[r["tool"]] = MeasuredScore(
            round(_clamp(value), 1),
            "measured",
            f"{r['disk_mb']:.0f} MB, {r['distributions']} dists, {needed} UI services",
        )
    return scores


def instrumentation_score(count: dict[str, Any]) -> MeasuredScore:
    if not count.get("files"):
        return MeasuredScore(None, "n/a", "no pipeline files")
    lines, api = int(count.get("tool_lines", 0)), int(count.get("api_count", 0))
    value = 10 - lines / LINES_PER_POINT - api / API_NAMES_PER_POINT
    return MeasuredScore(round(_clamp(value), 1), "measured", f"{lines} lines, {api} API names")


def interpretability_score(summary: Summary, tool: str) -> MeasuredScore:
    scores = [s.evidence_score for (t, _m), s in summary.stats.items() if t == tool]
    counts = [c for c in scores if c is not None]
    if not counts:
        return MeasuredScore(None, "n/a", "no evidence (no completed run or no evidence reader)")
    got = min(counts)
    return MeasuredScore(round(10 * got / 7, 1), "measured", f"{got}/7 items")


def catalogue_of(summary: Summary) -> dict[str, dict[str, list[str]]]:
    """The capability catalogue the compare recorded (that version's tests), else this one's."""
    recorded = summary.meta.get("capabilities")
    return recorded if isinstance(recorded, dict) else load_catalogue()


def checklist_score(tool: str, name: str, found: dict[str, dict[str, list[str]]]) -> MeasuredScore:
    if tool == "plain":
        return MeasuredScore(None, "n/a", "the baseline has no tool to exercise")
    result = checklist(tool, name, found)
    return MeasuredScore(
        round(result["score"], 1), "measured", f"{result['held']}/{result['total']} {name} items"
    )


def performance_score(summary: Summary, tool: str) -> MeasuredScore:
    ratios = []
    for model in summary.models:
        s, base = summary.stats.get((tool, model)), summary.stats.get(("plain", model))
        if s and base and s.wall.median and base.wall.median:
            ratios.append(base.wall.median / s.wall.median)
    if not ratios:
        return MeasuredScore(None, "n/a", "no completed run of this tool and plain")
    ratio = statistics.mean(ratios)
    return MeasuredScore(round(_clamp(10 * ratio), 1), "measured", f"{1 / ratio:.2f}× plain time")


def measured_matrix(
    summary: Summary, matrix: PaperMatrix, weights: dict[str, Decimal]
) -> dict[str, dict[str, Any]]:
    """tool -> {criterion: MeasuredScore, ..., "performance": MeasuredScore, "total": Decimal|None}.

    Criteria without a measurement use the paper's score (source "paper"), so the total is
    comparable with Table 2; an unmeasurable measurable criterion (n/a) also falls back to it.
    """
    declared = summary.meta.get("tools_declared") or {}
    services = {t: len(facts.get("services") or []) for t, facts in declared.items()}
    installs = installation_scores(summary.installs, services)
    counts = summary.meta.get("instrumentation", {})
    found = catalogue_of(summary)
    out: dict[str, dict[str, Any]] = {}
    for tool in summary.tools:
        base = base_tool(tool)  # another version or variant shares its pipeline and paper row
        row: dict[str, Any] = {}
        for criterion in matrix.criteria:
            key = criterion.key
            if key == "installation":
                score = installs.get(env_label(tool)) or MeasuredScore(None, "n/a", "not measured")
            elif key == "instrumentation":
                score = instrumentation_score(counts.get(base, {}))
            elif key == "interpretability":
                score = interpretability_score(summary, tool)
            elif key in CHECKLISTS:
                score = checklist_score(base, key, found)
            else:
                score = MeasuredScore(None, "paper" if base in matrix.tools else "not in the paper")
            if score.value is None and base in matrix.tools:
                paper = float(criterion.scores[base])
                score = MeasuredScore(
                    paper, "paper" if score.source == "paper" else "paper (n/a)", score.detail
                )
            row[key] = score
        row["performance"] = performance_score(summary, tool)
        values = {k: row[k].value for k in matrix.criterion_keys}
        row["total"] = (
            weighted_total({k: Decimal(str(v)) for k, v in values.items()}, weights)
            if all(v is not None for v in values.values())
            else None
        )
        out[tool] = row
    return out
