"""The sweep scenario's section: per tool, wall time at each parallelism, the overhead each
trial costs over the same trial run plain, whether the tool's store answers for every trial,
and whether every tool found the same best trial."""

from __future__ import annotations

import statistics
from typing import Any

from mlopsbench.report import charts
from mlopsbench.report.aggregate import Summary
from mlopsbench.report.document import Image, Section, Table

DASH = "–"


def _sweeps(summary: Summary) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(tool, workers) -> the sweep summaries (``tool_info["sweep"]``) of its completed runs,
    each with the run's measured wall time."""
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in summary.run_rows:
        result = row.get("result") or {}
        sweep = (result.get("tool_info") or {}).get("sweep")
        if row.get("status") not in ("ok", "gate_failed") or not isinstance(sweep, dict):
            continue
        wall = (row.get("measure") or {}).get("wall_s")
        key = (str(row.get("tool")), int(sweep.get("workers", 1)))
        found.setdefault(key, []).append({**sweep, "wall_s": wall})
    return found


def _median(values: list[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.median(numbers) if numbers else None


def sweep_section(summary: Summary, colours: dict[str, str]) -> Section | None:
    if summary.meta.get("usecase") != "sweep":
        return None
    sweeps = _sweeps(summary)
    sec = Section("Sweep: trials fanned out by each tool", "sweep")
    sec.blocks.append(
        "Each tool runs the same trials (one config dataclass, one seed) with its own fan-out — "
        "Metaflow `foreach`, Airflow `.expand`, KFP `ParallelFor`, Prefect `.map`, Dagster "
        "dynamic outputs, ZenML steps, DVC's experiment queue, MLflow nested runs, W&B grouped "
        "runs — then registers and gates the best. Overhead per trial = (tool wall − plain wall at "
        "the same parallelism) / trials. 'In the store' = trials a query of the tool's own store "
        "returned after the run. Every trial trains with one thread, so the best trial must be "
        "the same everywhere."
    )
    if not sweeps:
        sec.blocks.append("No sweep run completed.")
        return sec
    workers = sorted({w for _t, w in sweeps})
    tools = [t for t in summary.tools if any((t, w) in sweeps for w in workers)]
    walls = {key: _median([s["wall_s"] for s in runs]) for key, runs in sweeps.items()}
    plain_best = _best_of(sweeps, "plain")
    rows = []
    for tool in tools:
        first = next(runs[0] for w in workers if (runs := sweeps.get((tool, w))))
        planned = int(first.get("planned") or 0)
        cells = [_fmt(walls.get((tool, w)), " s") for w in workers]
        if len(workers) > 1:
            one, most = walls.get((tool, workers[0])), walls.get((tool, workers[-1]))
            cells.append(f"{one / most:.2f}×" if one and most else DASH)
        for w in workers:
            cells.append(_per_trial(walls.get((tool, w)), walls.get(("plain", w)), planned, tool))
        stored = [s.get("stored_trials") for w in workers for s in sweeps.get((tool, w), [])]
        best = _best_of(sweeps, tool)
        rows.append(
            (
                tool,
                str(planned),
                *cells,
                _stored(stored, planned),
                _best_text(best),
                _same(best, plain_best, tool),
            )
        )
    head = [
        "tool",
        "trials",
        *(f"wall, {w} worker{'s' if w > 1 else ''}" for w in workers),
        *([f"speed-up {workers[0]}→{workers[-1]}"] if len(workers) > 1 else []),
        *(f"overhead/trial, {w}w" for w in workers),
        "in the store",
        "best trial",
        "same best as plain",
    ]
    sec.blocks.append(Table(tuple(head), tuple(rows), "Medians over repeats"))
    series = {
        f"{w} worker{'s' if w > 1 else ''}": [walls.get((t, w)) for t in tools] for w in workers
    }
    sec.blocks.append(
        Image(
            "sweep_wall",
            charts.grouped_bar_chart(tools, series, "Sweep wall time per tool", "seconds"),
            "sweep wall time per tool and parallelism",
        )
    )
    return sec


def _fmt(value: float | None, suffix: str = "") -> str:
    return DASH if value is None else f"{value:.1f}{suffix}"


def _per_trial(wall: float | None, plain: float | None, planned: int, tool: str) -> str:
    if tool == "plain":
        return "baseline"
    if wall is None or plain is None or not planned:
        return DASH
    return f"{(wall - plain) / planned:+.2f} s"


def _best_of(sweeps: dict[tuple[str, int], list[dict[str, Any]]], tool: str) -> set[str]:
    return {
        str((s.get("best") or {}).get("name"))
        for (t, _w), runs in sweeps.items()
        if t == tool
        for s in runs
        if s.get("best")
    }


def _best_text(best: set[str]) -> str:
    return ", ".join(sorted(best)) if best else DASH


def _same(best: set[str], plain: set[str], tool: str) -> str:
    if tool == "plain" or not plain or not best:
        return DASH
    return "✓" if best == plain else "✗"


def _stored(stored: list[Any], planned: int) -> str:
    counts = [int(s) for s in stored if isinstance(s, int)]
    if not counts:
        return "no store"
    low = min(counts)
    return f"{'✓' if low >= planned else '✗'} {low}/{planned}"
