"""Build ``index.html`` and ``report.md`` of a compare folder from its ``results.jsonl`` alone.

``mlopsbench report DIR`` calls :func:`build_report` without re-running anything; the compare
calls it at the end (also after Ctrl-C, with what finished).
"""

from __future__ import annotations

import os
import statistics
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from mlopsbench.bench.results import read_rows, results_path
from mlopsbench.report import charts
from mlopsbench.report import matrix as mx
from mlopsbench.report.aggregate import SPLIT_PARTS, Summary, summarize
from mlopsbench.report.capabilities import (
    appendix_section,
    checklist_section,
    documentation_section,
)
from mlopsbench.report.document import (
    Bullets,
    Document,
    Image,
    Quote,
    Section,
    Table,
    to_html,
    to_markdown,
)
from mlopsbench.report.measured import FORMULAS, MEASURABLE, measured_matrix
from mlopsbench.report.sweep import sweep_section
from mlopsbench.result import EVIDENCE_KEYS
from mlopsbench.toolkit.envs import base_tool

EVIDENCE_LABELS = {
    "params": "params",
    "per_epoch_metrics": "per-epoch metrics",
    "final_metrics": "final metrics",
    "model_artifact": "model artifact",
    "plots": "plots/cards",
    "lineage": "lineage",
    "run_state": "run state",
}
DASH = "–"
LATENCY_PARTS = ("scheduling", "queueing", "in_task")
NOT_IN_PAPER = "not in the paper"


def _f(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.{digits}f}{suffix}"


def _signed(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return DASH if value is None else f"{value:+.{digits}f}{suffix}"


def _yes(flag: bool | None) -> str:
    return DASH if flag is None else ("✓ yes" if flag else "✗ no")


def _check(share: float | None) -> str:
    if share is None:
        return "n/a"
    if share == 1.0:
        return "✓"
    return "✗" if share == 0.0 else f"partial ({share:.0%})"


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------


def _overview(summary: Summary, many: bool) -> Section:
    sec = Section("Summary", "summary")
    sec.blocks.append(
        "One row per tool and model. Wall time is measured by the harness around each tool's own "
        "process (minus the harness's evidence read-back); overhead is against **plain**, the same "
        "pipeline with no tool. CPU s (user + system of the run's whole process tree) barely moves "
        "with other load on the machine, so it is the steadier measure of a tool's cost on a busy "
        "machine. Accuracy should equal plain's: same config, same seed, same core code."
    )
    rows = []
    for s in (summary.stats[k] for k in _ordered_keys(summary)):
        rows.append(
            (
                s.tool,
                s.model,
                f"{s.completed}/{s.runs}",
                _f(s.accuracy.median, 4),
                _signed(s.acc_delta, 4),
                _yes(s.matches_plain),
                _f(s.wall.median, 1),
                _f(s.wall.range, 1),
                _signed(s.overhead_s, 1),
                _signed(s.overhead_pct, 0, "%"),
                _f(s.cpu.median, 1),
                _signed(s.cpu_overhead_pct, 0, "%"),
                _f(s.peak_rss.median, 0),
                _f(s.tree_rss.median, 0),
                DASH if s.evidence_score is None else f"{s.evidence_score}/7",
            )
        )
    sec.blocks.append(
        Table(
            (
                "tool",
                "model",
                "completed",
                "accuracy",
                "Δ vs plain",
                "matches plain",
                "wall s (median)",
                "spread s",
                "overhead s",
                "overhead %",
                "CPU s",
                "CPU overhead %",
                "peak RSS MB",
                "tree RSS MB",
                "evidence",
            ),
            tuple(rows),
            f"Medians over repeats; spread = max − min; tolerance for 'matches' = ±{summary.tolerance:g} accuracy",
        )
    )
    stats = [summary.stats[k] for k in _ordered_keys(summary)]
    colours = tool_colours(summary.meta)
    for name, png, alt in (
        (
            "overhead",
            charts.overhead_chart(stats, many, colours),
            "wall time and overhead per tool",
        ),
        (
            "accuracy",
            charts.accuracy_chart(stats, many, summary.tolerance, colours),
            "accuracy per tool",
        ),
    ):
        if png:
            sec.blocks.append(Image(name, png, alt))
    return sec


def _published(summary: Summary) -> Section | None:
    """What Badea & Monea published for the tools both studies ran, beside our figures."""
    study = tomllib.loads(
        resources.files("mlopsbench.report").joinpath("published.toml").read_text("utf-8")
    )["badea_monea_2025"]
    counts = summary.meta.get("instrumentation", {})
    rows = []
    for (tool, model), s in summary.stats.items():
        base = base_tool(tool)
        if base not in study["overhead_pct"]:
            continue
        rows.append(
            (
                f"{tool} ({model})",
                _signed(s.overhead_pct, 0, " %"),
                study["overhead_pct"][base],
                str(counts.get(base, {}).get("tool_lines", DASH)),
                str(counts.get(base, {}).get("loc", DASH)),
                study["added_lines"].get(base, DASH),
            )
        )
    if not rows:
        return None
    sec = Section("Beside published measurements", "published")
    sec.blocks.append(
        f"{study['title']} measured {study['what']}. Their workload and machine differ from ours: "
        "compare the ordering, not the numbers. Our overhead is wall time over plain's on this "
        "run; our lines are the pipeline's lines that touch the tool, and its code lines in all."
    )
    sec.blocks.append(
        Table(
            (
                "tool (model)",
                "overhead (ours)",
                "overhead (published)",
                "tool lines (ours)",
                "pipeline code lines (ours)",
                "added lines (published)",
            ),
            tuple(rows),
        )
    )
    return sec


def _task_latency(summary: Summary) -> Section | None:
    """Per-task orchestration overhead, for the runs whose tool records it per task instance
    (Airflow: dag.test(), LocalExecutor, CeleryExecutor side by side with ``airflow@VARIANT``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in summary.run_rows:
        info = ((row.get("result") or {}).get("tool_info")) or {}
        if row.get("status") == "ok" and info.get("task_overhead_median_s") is not None:
            groups.setdefault((str(row["tool"]), str(row.get("model"))), []).append(info)
    if not groups:
        return None
    rows = []
    for (tool, model), infos in groups.items():
        latency = [i.get("latency_median_s") or {} for i in infos]
        rows.append(
            (
                tool,
                model,
                str(infos[0].get("executor", DASH)),
                str(len(infos)),
                _f(_median(i.get("task_overhead_median_s") for i in infos), 2),
                *(_f(_median(x.get(part) for x in latency), 2) for part in LATENCY_PARTS),
                str(len({h for i in infos for h in (i.get("hosts") or {}).values() if h})),
                _f(_median(i.get("trigger_to_finish_s") for i in infos), 1),
                _f(_median(i.get("deployment_ready_s") for i in infos), 1),
            )
        )
    sec = Section("Orchestration overhead per task", "task-latency")
    sec.blocks.append(
        "Per task instance, from the tool's own records: `total` = upstream done → task ended, "
        "less the core stage's own seconds; `scheduling` = upstream done → handed to the "
        "executor; `queueing` → started on a worker; `in task` = the task's run less its core "
        "work. Medians over the task instances after the first, then over repeats. dag.test() "
        "queues nothing; a deployment is started for each run and stopped after it."
    )
    head = ("tool", "model", "executor", "runs", "total s", "scheduling s", "queueing s")
    head += ("in task s", "hosts", "trigger → finished s", "deployment ready s")
    sec.blocks.append(Table(head, tuple(rows), "Seconds per task instance, medians"))
    return sec


def _median(values: Any) -> float | None:
    found = [float(v) for v in values if v is not None]
    return statistics.median(found) if found else None


def _ordered_keys(summary: Summary) -> list[tuple[str, str]]:
    return [(t, m) for m in summary.models for t in summary.tools if (t, m) in summary.stats]


def _split(summary: Summary, many: bool) -> Section:
    sec = Section("Where the time goes", "split")
    sec.blocks.append(
        "`import` = interpreter start-up + importing the tool's runner; `data`, `train` (or `model`), "
        "`evaluate` = the core stages as timed inside the pipeline's steps; `tool` = everything else "
        "(step processes, tracking, registry, scheduler...). Parts are medians, so they may not add "
        "up exactly to the median wall."
    )
    rows = []
    for s in (summary.stats[k] for k in _ordered_keys(summary)):
        book = ", ".join(f"{k} {v:.1f}" for k, v in s.bookkeeping.items()) or DASH
        rows.append(
            (
                s.tool,
                s.model,
                *(_f(s.split[p].median, 1) if s.split else DASH for p in SPLIT_PARTS),
                _f(s.wall.median, 1),
                book,
            )
        )
    sec.blocks.append(
        Table(
            ("tool", "model", *SPLIT_PARTS, "wall", "runner-reported bookkeeping s"),
            tuple(rows),
            "Seconds, medians over completed runs",
        )
    )
    png = charts.split_chart([summary.stats[k] for k in _ordered_keys(summary)], many)
    if png:
        sec.blocks.append(Image("split", png, "time split per tool"))
    return sec


def _repro(summary: Summary) -> Section:
    sec = Section("Reproducibility", "repro")
    sec.blocks.append(
        f"Accuracy of every repeat. **Matches plain**: |median − plain's median| ≤ {summary.tolerance:g}. "
        f"**Repeatable**: max − min over repeats ≤ {summary.tolerance:g} (needs ≥ 2 repeats)."
    )
    rows = []
    for s in (summary.stats[k] for k in _ordered_keys(summary)):
        rows.append(
            (
                s.tool,
                s.model,
                ", ".join(f"{v:.4f}" for v in s.accuracy.values) or DASH,
                _f(s.accuracy.range, 4),
                _yes(s.repeatable),
                _yes(s.matches_plain),
            )
        )
    sec.blocks.append(
        Table(
            ("tool", "model", "accuracy per repeat", "range", "repeatable", "matches plain"),
            tuple(rows),
        )
    )
    return sec


def _evidence(summary: Summary) -> Section:
    sec = Section("What each tool recorded (evidence)", "evidence")
    sec.blocks.append(
        "Checked after each run by reading the tool's **own store** (tracking DB, datastore, metadata "
        "DB, pipeline root), not the harness's files: the paper's 'result interpretability' made "
        "objective. ✓ = present in every completed run; n/a = the runner has no evidence reader or no "
        "run completed."
    )
    rows = []
    for s in (summary.stats[k] for k in _ordered_keys(summary)):
        score = DASH if s.evidence_score is None else f"{s.evidence_score}/7"
        rows.append(
            (
                s.tool,
                s.model,
                *(_check(s.evidence.get(k)) for k in EVIDENCE_KEYS),
                score,
                s.evidence_note or "",
            )
        )
    sec.blocks.append(
        Table(
            ("tool", "model", *(EVIDENCE_LABELS[k] for k in EVIDENCE_KEYS), "score", "note"),
            tuple(rows),
        )
    )
    return sec


def _instrumentation(summary: Summary) -> Section:
    sec = Section("Instrumentation cost", "instrumentation")
    sec.blocks.append(
        "Counted from source with `ast` over each tool's pipeline files (`ToolSpec.pipeline_files`): "
        "code lines without docstrings, comments or blank lines; lines that reference the tool's "
        "package; distinct tool API names resolved from the files' own imports (calls, decorators, "
        "base classes, inherited `self.` calls). The harness's `evidence()` read-back is excluded. "
        "The paper's use cases count every pipeline file but the sweep's (files named `*sweep*`); "
        "`compare sweep` counts only what the sweep adds."
    )
    counts = summary.meta.get("instrumentation", {})
    rows = []
    for tool in [t for t in summary.tools if t in counts] or sorted(counts):
        c = counts[tool]
        api = c.get("api", [])
        shown = ", ".join(f"`{a}`" for a in api[:14]) + (
            f" … (+{len(api) - 14})" if len(api) > 14 else ""
        )
        missing = f" (missing: {', '.join(c['missing'])})" if c.get("missing") else ""
        rows.append(
            (
                tool,
                f"{len(c.get('files', []))}{missing}",
                str(c.get("loc", 0)),
                str(c.get("tool_lines", 0)),
                str(c.get("api_count", 0)),
                shown or DASH,
            )
        )
    sec.blocks.append(
        Table(("tool", "files", "code lines", "tool lines", "API names", "API used"), tuple(rows))
    )
    return sec


def _install(summary: Summary) -> Section:
    sec = Section("Installation footprint and services", "install")
    if summary.installs:
        sec.blocks.append(
            "Each tool runs in an environment of its own, layered on one shared core environment "
            "(torch, the ML libraries, the harness: counted once, on its own row). A tool's row is "
            "what its environment adds: its own distributions, their size on disk and the seconds "
            "the install took — *as created* when the environment was first built (pip's cache as "
            "it was), *cold* and *warm* when `--measure-install` built it again from the registry "
            "with an empty and then a filled pip cache."
        )
        rows = [
            (
                r["tool"],
                ", ".join(r.get("packages", [])),
                str(r.get("cache", DASH)),
                _f(r.get("seconds"), 1),
                str(r.get("distributions", DASH)),
                _f(r.get("disk_mb"), 0),
                r.get("error") or "",
            )
            for r in summary.installs
        ]
        sec.blocks.append(
            Table(
                (
                    "tool",
                    "installed",
                    "pip cache",
                    "install s",
                    "distributions",
                    "disk MB",
                    "error",
                ),
                tuple(rows),
            )
        )
    else:
        sec.blocks.append("No tool environment was recorded (every tool ran in the core one).")
    declared = tool_facts(summary.meta)
    healthy = {r["tool"]: r for r in summary.servers}
    rows = []
    for tool in summary.tools:
        info = declared.get(base_tool(tool), {})
        srv = healthy.get(tool)
        measured = (
            DASH
            if srv is None
            else (f"error: {srv['error']}" if srv.get("error") else _healthy(srv))
        )
        rows.append(
            (
                tool,
                info.get("ui", DASH),
                str(len(info.get("services", []))),
                "; ".join(info.get("services", [])) or DASH,
                measured,
                info.get("services_note", ""),
            )
        )
    sec.blocks.append(
        Table(
            (
                "tool",
                "UI",
                "services",
                "what must run for the UI (documented)",
                "time to healthy (measured)",
                "note",
            ),
            tuple(rows),
            "Services needed to browse results in a UI",
        )
    )
    return sec


def tool_colours(meta: dict[str, Any]) -> dict[str, str]:
    """Each tool's declared colour, also under every version label the compare ran."""
    facts = tool_facts(meta)
    colours = {name: str(f.get("colour")) for name, f in facts.items()}
    for label in meta.get("tools", []):
        if base_tool(label) in colours:
            colours.setdefault(label, colours[base_tool(label)])
    return colours


def tool_facts(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tool's declared facts (UI, services, colour) as the compare recorded them; for
    results written before they were recorded, from the declarations installed now."""
    recorded = meta.get("tools_declared")
    if isinstance(recorded, dict):
        return recorded
    from mlopsbench.errors import ConfigError
    from mlopsbench.toolkit.registry import get_tool

    facts = {}
    for name in {base_tool(label) for label in meta.get("tools", [])}:
        try:
            facts[name] = get_tool(name).facts()
        except ConfigError:  # a tool this install does not know
            continue
    return facts


def _healthy(row: dict[str, Any]) -> str:
    text = f"{row['healthy_s']:.1f} s"
    if row.get("processes"):
        text += f", {row['processes']} processes"
    if row.get("peak_rss_mb"):
        text += f", {row['peak_rss_mb']:.0f} MB"
    return text + (f" ({row['detail']})" if row.get("detail") else "")


def _paper_matrix(matrix: mx.PaperMatrix) -> Section:
    sec = Section("The paper's matrix (Table 2), recomputed", "matrix")
    totals = mx.totals(matrix)
    src = matrix.source
    sec.blocks.append(
        f"Transcribed from {src['table']} of “{src['title']}” ({src['authors']}); weights from "
        f"{src['weights_from']}. Totals recomputed with exact decimal arithmetic."
    )
    head = ("criterion", "weight", *(matrix.tool_names[t] for t in matrix.tools))
    rows = [
        (c.name, f"{c.weight}%", *(str(c.scores[t]) for t in matrix.tools)) for c in matrix.criteria
    ]
    rows.append(("**Total (recomputed)**", "100%", *(str(totals[t]) for t in matrix.tools)))
    rows.append(
        ("Total (printed in Table 2)", "", *(str(matrix.printed_totals[t]) for t in matrix.tools))
    )
    sec.blocks.append(Table(head, tuple(rows)))
    mismatch = mx.printed_total_mismatches(matrix)
    text_diff = mx.table_vs_text(matrix)
    sec.blocks.append(
        (
            "✓ Every printed total equals the recomputation."
            if not mismatch
            else "✗ " + "; ".join(mismatch)
        )
        + " "
        + (
            "✓ Every per-section “Score: N” in Sections 4.1–4.6 equals its Table 2 cell."
            if not text_diff
            else "✗ " + "; ".join(text_diff)
        )
    )
    sec.blocks.append(
        Image(
            "paper_matrix",
            charts.heatmap_chart(
                [c.name for c in matrix.criteria],
                [matrix.tool_names[t] for t in matrix.tools],
                [[float(c.scores[t]) for t in matrix.tools] for c in matrix.criteria],
                "Paper scores (Table 2)",
                [totals[t] for t in matrix.tools],
            ),
            "paper matrix heatmap",
        )
    )
    sec.blocks.append("**Where the paper's text disagrees with its table or with itself:**")
    for d in matrix.discrepancies:
        sec.blocks.append(Quote(f"“{d.quote}”", f"{d.where}. {d.table_says} {d.note}"))
    for a, b in mx.dominated_pairs(matrix):
        sec.blocks.append(
            f"**Dominance:** {matrix.tool_names[a]} scores at least as high as {matrix.tool_names[b]} on "
            f"every criterion, so no choice of non-negative weights ranks {matrix.tool_names[b]} above "
            f"{matrix.tool_names[a]} — although the paper recommends {matrix.tool_names[b]} for its "
            "own context (Section 4.8)."
        )
    return sec


def _profiles(
    matrix: mx.PaperMatrix,
    selected: mx.WeightProfile,
    profiles: dict[str, mx.WeightProfile],
    colours: dict[str, str],
) -> tuple[Section, dict[str, dict[str, Decimal]]]:
    sec = Section("Weights and ranking per profile", "profiles")
    sec.blocks.append(
        f"Selected profile: **{selected.name}** ({selected.title}). Weights are percent; each profile "
        "turns one of the paper's recommendations into weights (the sentence it encodes is quoted). "
        "Change them with `--profile NAME` or `--weights FILE.toml` (a `[weights]` table with the six "
        "criteria; non-negative, summing to 100)."
    )
    head = ("profile", *(c.name for c in matrix.criteria))
    sec.blocks.append(
        Table(
            head,
            tuple(
                (
                    p.name + (" (selected)" if p.name == selected.name else ""),
                    *(f"{p.weights[c.key].normalize():f}" for c in matrix.criteria),
                )
                for p in profiles.values()
            ),
        )
    )
    totals = {p.name: mx.totals(matrix, p.weights) for p in profiles.values()}
    rows = []
    for p in profiles.values():
        ranked = mx.ranking(totals[p.name])
        rows.append((p.name, *(f"#{r} {matrix.tool_names[t]} {v}" for r, t, v in ranked)))
    sec.blocks.append(
        Table(
            ("profile", "1st", "2nd", "3rd", "4th"),
            tuple(rows),
            "Ranking of the paper's scores under each profile",
        )
    )
    sec.blocks.append(
        Bullets(tuple(f"**{p.name}** — {p.title}: “{p.basis}”" for p in profiles.values()))
    )
    sec.blocks.append(
        Image(
            "ranking",
            charts.ranking_chart(list(profiles), list(matrix.tools), totals, colours),
            "ranking per profile",
        )
    )
    return sec, totals


def _paper_total(paper_totals: Mapping[str, Any], tool: str) -> str:
    base = base_tool(tool)  # another version of a paper tool: the paper's row still applies
    return str(paper_totals[base]) if base in paper_totals else NOT_IN_PAPER


def _measured(
    summary: Summary,
    matrix: mx.PaperMatrix,
    selected: mx.WeightProfile,
    profiles: Mapping[str, mx.WeightProfile],
) -> Section:
    sec = Section("Measured scores next to the paper's", "measured")
    sec.blocks.append(
        "Criteria we can measure get a score from a formula (below); the others keep the paper's score, "
        "marked (P). A measurable criterion without data (n/a) also falls back to the paper, marked "
        "(P, n/a). Totals use the selected profile's weights. Performance is measured but is not one of "
        "the paper's criteria, so it is shown and not weighted."
    )
    table = measured_matrix(summary, matrix, selected.weights)
    paper_totals = mx.totals(matrix, selected.weights)
    head = (
        "tool",
        *(c.name for c in matrix.criteria),
        "performance",
        "total (measured)",
        "total (paper)",
    )
    rows = []
    for tool, row in table.items():
        cells = []
        for c in matrix.criteria:
            score = row[c.key]
            mark = {"measured": "M", "paper": "P", "paper (n/a)": "P, n/a"}.get(
                score.source, score.source
            )
            cells.append(DASH if score.value is None else f"{score.value:g} ({mark})")
        perf = row["performance"]
        rows.append(
            (
                tool,
                *cells,
                DASH if perf.value is None else f"{perf.value:g}",
                DASH if row["total"] is None else str(row["total"]),
                _paper_total(paper_totals, tool),
            )
        )
    sec.blocks.append(
        Table(
            head,
            tuple(rows),
            "M = measured here, P = the paper's score; a tool the paper did not score shows its "
            "measured criteria only (– where nothing here measures one)",
        )
    )
    details = []
    for tool, row in table.items():
        parts = [f"{k}: {row[k].detail}" for k in (*MEASURABLE, "performance") if row[k].detail]
        details.append(f"**{tool}** — " + "; ".join(parts))
    sec.blocks.append(Bullets(tuple(details)))
    sec.blocks.append("**Formulas:**")
    sec.blocks.append(
        Bullets(
            (
                *tuple(f"**{k}** = {v}" for k, v in FORMULAS.items()),
                "**documentation** = the paper's score (nothing here measures how good a "
                "tool's documentation is; the deprecation warnings seen in these runs and the "
                "API changes the paper's code hits are listed beside it as evidence)",
            )
        )
    )
    paper_tools = [t for t in table if t in matrix.tools]
    if paper_tools:
        values = [
            [
                table[t][c.key].value if table[t][c.key].source == "measured" else None
                for t in paper_tools
            ]
            for c in matrix.criteria
        ]
        texts = [
            [
                f"{table[t][c.key].value:g}"
                if table[t][c.key].source == "measured"
                else f"P {table[t][c.key].value:g}"
                for t in paper_tools
            ]
            for c in matrix.criteria
        ]
        sec.blocks.append(
            Image(
                "measured_matrix",
                charts.heatmap_chart(
                    [c.name for c in matrix.criteria],
                    [matrix.tool_names[t] for t in paper_tools],
                    values,
                    "Measured scores (grey: the paper's score, P)",
                    [table[t]["total"] for t in paper_tools],
                    texts,
                ),
                "measured matrix heatmap",
            )
        )
    sec.blocks += _ranking_moves(summary, matrix, profiles)
    return sec


def _ranking_moves(
    summary: Summary, matrix: mx.PaperMatrix, profiles: Mapping[str, mx.WeightProfile]
) -> list[Any]:
    """Paper ranking vs measured ranking of the paper's tools under every weight profile."""
    paper_ranks: dict[str, dict[str, int]] = {}
    measured_ranks: dict[str, dict[str, int]] = {}
    rows = []
    for name, profile in profiles.items():
        measured = measured_matrix(summary, matrix, profile.weights)
        totals = {
            t: row["total"] for t, row in measured.items() if t in matrix.tools and row["total"]
        }
        if len(totals) < 2:
            continue
        paper = {t: v for t, v in mx.totals(matrix, profile.weights).items() if t in totals}
        paper_ranks[name] = {t: r for r, t, _v in mx.ranking(paper)}
        measured_ranks[name] = {t: r for r, t, _v in mx.ranking(totals)}
        rows.append(
            (
                name,
                " > ".join(t for _r, t, _v in mx.ranking(paper)),
                " > ".join(f"{t} {v}" for _r, t, v in mx.ranking(totals)),
            )
        )
    if not rows:
        return []
    return [
        Table(
            ("profile", "paper ranking", "measured ranking (total)"),
            tuple(rows),
            "How the ranking moves, over the paper's tools measured here",
        ),
        Image(
            "ranking_moves",
            charts.rank_shift_chart(
                list(paper_ranks), paper_ranks, measured_ranks, tool_colours(summary.meta)
            ),
            "paper ranking vs measured ranking per profile",
        ),
    ]


def _failures(summary: Summary) -> Section | None:
    bad = [r for r in summary.run_rows if r.get("status") not in ("ok",)]
    if not bad and summary.finished:
        return None
    sec = Section("Runs that did not end ok", "failures")
    sec.blocks.append(
        "`failed` / `missing`: the pipeline did not run to the end (or the tool is not installed); "
        "the run is left out of every timing. `gate_failed`: the pipeline completed and its "
        "timings and evidence count, but the model scored below its quality gate."
    )
    if not summary.finished:
        sec.blocks.append(
            "✗ The compare did not finish (interrupted): only the runs listed above completed."
        )
    if bad:
        sec.blocks.append(
            Table(
                ("run", "status", "error", "log"),
                tuple(
                    (
                        r.get("id", "?"),
                        r.get("status", "?"),
                        r.get("error") or "",
                        r.get("log") or DASH,
                    )
                    for r in bad
                ),
            )
        )
    return sec


def _environment(summary: Summary) -> Section:
    sec = Section("Environment", "environment")
    env = dict(summary.meta.get("environment", {}))
    meta = summary.meta
    rows = [(k, str(v)) for k, v in env.items()]
    rows += [
        ("threads per run", str(meta.get("threads", DASH))),
        ("command", meta.get("command") or DASH),
        ("started", meta.get("started_at", DASH)),
    ]
    loads = [v for s in summary.stats.values() for v in s.load_avg.values]
    if loads:
        rows.append(
            ("load average at run start (min..max)", f"{min(loads):.2f} .. {max(loads):.2f}")
        )
    sec.blocks.append(Table(("what", "value"), tuple(rows)))
    if loads and max(loads) > float(env.get("cpu_usable") or env.get("cpu_count") or 1):
        sec.blocks.append(
            "✗ The machine was busier than its CPU count during some runs: timings are noisy; "
            "compare medians over several `--repeats`."
        )
    return sec


def _subtitle(summary: Summary) -> str:
    meta = summary.meta
    cfg = meta.get("config", {})
    bits = [
        f"use case **{meta.get('usecase', '?')}**",
        f"models {', '.join(summary.models) or DASH}",
        f"{meta.get('repeats', '?')} repeat(s)",
    ]
    if "epochs" in cfg:
        bits.append(f"{cfg['epochs']} epoch(s)")
    if "seed" in cfg:
        bits.append(f"seed {cfg['seed']}")
    bits.append(f"started {meta.get('started_at', '?')}")
    bits.append("complete" if summary.finished else "INTERRUPTED (partial results)")
    return " · ".join(bits)


def build_document(
    rows: list[dict[str, Any]], weights_file: Path | None = None, profile: str | None = None
) -> Document:
    summary = summarize(rows)
    matrix = mx.load_matrix()
    selected, profiles = _select_profile(matrix, summary.meta, weights_file, profile)
    many = len(summary.models) > 1
    doc = Document("MLOps tools compared — mlopsbench", _subtitle(summary))
    sweep = sweep_section(summary, tool_colours(summary.meta)) if summary.stats else None
    if summary.stats:
        doc.sections += [
            _overview(summary, many),
            *([sweep] if sweep else []),
            _split(summary, many),
            _repro(summary),
            _evidence(summary),
        ]
    published = _published(summary) if summary.stats else None
    latency = _task_latency(summary) if summary.stats else None
    doc.sections += [section for section in (latency, published) if section is not None]
    doc.sections += [_instrumentation(summary), _install(summary), _paper_matrix(matrix)]
    section, _totals = _profiles(matrix, selected, profiles, tool_colours(summary.meta))
    doc.sections += [
        checklist_section(summary, matrix),
        documentation_section(summary),
        section,
        _measured(summary, matrix, selected, profiles),
    ]
    failures = _failures(summary)
    if failures:
        doc.sections.append(failures)
    doc.sections += [_environment(summary), appendix_section(summary)]
    return doc


def _select_profile(
    matrix: mx.PaperMatrix, meta: dict[str, Any], weights_file: Path | None, profile: str | None
) -> tuple[mx.WeightProfile, dict[str, mx.WeightProfile]]:
    """Explicit options win; else what the compare recorded (its custom weights travel in meta)."""
    if weights_file is not None or profile is not None:
        return mx.resolve_profiles(matrix, weights_file, profile)
    recorded = meta.get("selected_profile")
    if isinstance(recorded, dict) and recorded.get("weights"):
        custom = mx.WeightProfile(
            name=str(recorded.get("name", "custom")),
            title=str(recorded.get("title", "custom")),
            basis=str(recorded.get("basis", "")),
            weights=mx.validate_weights(
                recorded["weights"], matrix.criterion_keys, "recorded weights"
            ),
        )
        profiles = mx.load_profiles(matrix.criterion_keys)
        return custom, {**profiles, custom.name: custom}
    return mx.resolve_profiles(matrix, None, None)


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def build_report(
    directory: str | Path,
    weights_file: Path | None = None,
    profile: str | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``index.html`` and ``report.md`` (+ ``charts/``) next to ``results.jsonl``.

    ``rows`` are that file's rows when the caller has read them already.
    """
    source = results_path(directory)
    out = source.parent
    doc = build_document(read_rows(source) if rows is None else rows, weights_file, profile)
    return {
        "html": _write_atomic(out / "index.html", to_html(doc)),
        "markdown": _write_atomic(out / "report.md", to_markdown(doc, out / "charts")),
        "results": source,
    }
