"""From ``results.jsonl`` rows to per-tool statistics: the numbers every table and chart shows.

Definitions (also printed in the report):

- a run *completed* when its status is ``ok`` or ``gate_failed`` (the pipeline ran to the end;
  the model merely missed its quality gate); only completed runs enter timings and accuracy;
- ``wall``: the worker process's wall time measured by the parent, minus the harness's own
  evidence read-back;
- split: ``import`` = interpreter start-up + importing the tool's runner (+ any ``import`` the
  runner reports); ``data``, ``train``/``model``, ``evaluate`` = the core stages as the runner
  measured them (inside the steps for multi-process tools); ``tool`` = everything else
  (bookkeeping, process start-up of steps, tracking, registry...);
- overhead: tool median wall - plain median wall (same model), and that over plain in %;
- CPU: user + system seconds of the worker and every process it waited for (steps,
  components), from ``os.wait4``: robust to other load on the machine, unlike wall time.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlopsbench.bench.results import CORE_STAGES
from mlopsbench.result import EVIDENCE_KEYS

COMPLETED = ("ok", "gate_failed")
SPLIT_PARTS = ("import", "data", "train", "evaluate", "tool")
PRIMARY_METRIC = "accuracy"


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def low(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def high(self) -> float | None:
        return max(self.values) if self.values else None

    @property
    def range(self) -> float | None:
        return (max(self.values) - min(self.values)) if self.values else None

    @property
    def stdev(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def _spread(values: Iterable[float | None]) -> Spread:
    return Spread(tuple(float(v) for v in values if v is not None))


@dataclass
class ToolStats:
    """One tool x model over its repeats."""

    tool: str
    model: str
    runs: int = 0
    completed: int = 0
    statuses: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (run id, message)
    wall: Spread = field(default_factory=lambda: Spread(()))
    cpu: Spread = field(default_factory=lambda: Spread(()))
    split: dict[str, Spread] = field(default_factory=dict)
    bookkeeping: dict[str, float] = field(default_factory=dict)  # runner's non-core stages, medians
    peak_rss: Spread = field(default_factory=lambda: Spread(()))
    tree_rss: Spread = field(default_factory=lambda: Spread(()))
    accuracy: Spread = field(default_factory=lambda: Spread(()))
    evidence: dict[str, float | None] = field(default_factory=dict)  # key -> share of runs with it
    evidence_note: str | None = None
    overhead_s: float | None = None
    overhead_pct: float | None = None
    cpu_overhead_pct: float | None = None
    acc_delta: float | None = None  # median accuracy - plain's
    matches_plain: bool | None = None
    repeatable: bool | None = None
    load_avg: Spread = field(default_factory=lambda: Spread(()))

    @property
    def evidence_score(self) -> int | None:
        """Checklist items recorded in every completed run (None: no evidence reader)."""
        if not self.evidence or all(v is None for v in self.evidence.values()):
            return None
        return sum(1 for v in self.evidence.values() if v == 1.0)


def run_split(row: dict[str, Any]) -> dict[str, float]:
    """The five-part split of one completed run (seconds; parts sum to its wall)."""
    measure = row.get("measure") or {}
    timings = (row.get("result") or {}).get("timings", {}) or {}
    wall = float(measure.get("wall_s", 0.0))
    parts = {
        "import": float(measure.get("startup_s", 0.0)) + float(measure.get("import_s", 0.0)),
        "data": float(timings.get("data", 0.0)),
        "train": float(timings.get("train", 0.0)) + float(timings.get("model", 0.0)),
        "evaluate": float(timings.get("evaluate", 0.0)),
    }
    parts["tool"] = max(0.0, wall - sum(parts.values()))
    return parts


def _bookkeeping(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys: dict[str, list[float]] = {}
    for row in rows:
        for key, value in ((row.get("result") or {}).get("timings") or {}).items():
            if key not in CORE_STAGES and key != "import":
                keys.setdefault(key, []).append(float(value))
        teardown = (row.get("measure") or {}).get("teardown_s")
        if teardown is not None:  # measured by the harness: interpreter exit after the result
            keys.setdefault("process exit", []).append(float(teardown))
    return {k: statistics.median(v) for k, v in sorted(keys.items())}


def _evidence(rows: list[dict[str, Any]]) -> tuple[dict[str, float | None], str | None]:
    found = [r["evidence"] for r in rows if isinstance(r.get("evidence"), dict)]
    if not found:
        notes = {r.get("evidence_error") for r in rows if r.get("evidence_error")}
        return {k: None for k in EVIDENCE_KEYS}, "; ".join(sorted(n for n in notes if n)) or None
    shares: dict[str, float | None] = {
        k: sum(1 for e in found if e.get(k)) / len(found) for k in EVIDENCE_KEYS
    }
    notes = {r.get("evidence_error") for r in rows if r.get("evidence_error")}
    return shares, "; ".join(sorted(n for n in notes if n)) or None


def tool_stats(tool: str, model: str, rows: list[dict[str, Any]]) -> ToolStats:
    stats = ToolStats(tool=tool, model=model, runs=len(rows))
    stats.statuses = [r.get("status", "failed") for r in rows]
    stats.errors = [
        (r.get("id", "?"), r.get("error") or r.get("status", ""))
        for r in rows
        if r.get("status") not in ("ok",)
    ]
    done = [r for r in rows if r.get("status") in COMPLETED and r.get("measure")]
    stats.completed = len(done)
    stats.wall = _spread(r["measure"].get("wall_s") for r in done)
    stats.cpu = _spread(r["measure"].get("cpu_s") for r in done)
    splits = [run_split(r) for r in done]
    stats.split = {p: _spread(s[p] for s in splits) for p in SPLIT_PARTS}
    stats.bookkeeping = _bookkeeping(done)
    stats.peak_rss = _spread(r["measure"].get("peak_rss_mb") for r in done)
    stats.tree_rss = _spread(r["measure"].get("tree_peak_rss_mb") for r in done)
    stats.accuracy = _spread(
        ((r.get("result") or {}).get("metrics") or {}).get(PRIMARY_METRIC) for r in done
    )
    stats.evidence, stats.evidence_note = _evidence(done)
    stats.load_avg = _spread((r.get("load_avg") or [None])[0] for r in done)
    return stats


def compare_to_plain(stats: dict[tuple[str, str], ToolStats], tolerance: float) -> None:
    """Fill overhead, accuracy delta and reproducibility flags against plain (same model)."""
    for (_tool, model), s in stats.items():
        if s.accuracy.n > 1:
            s.repeatable = (s.accuracy.range or 0.0) <= tolerance
        elif s.accuracy.n == 1:
            s.repeatable = None  # one repeat: nothing to compare
        base = stats.get(("plain", model))
        if base is None or base.wall.median is None or s.wall.median is None:
            continue
        s.overhead_s = s.wall.median - base.wall.median
        s.overhead_pct = 100.0 * s.overhead_s / base.wall.median if base.wall.median else None
        if base.cpu.median and s.cpu.median is not None:
            s.cpu_overhead_pct = 100.0 * (s.cpu.median - base.cpu.median) / base.cpu.median
        if base.accuracy.median is not None and s.accuracy.median is not None:
            s.acc_delta = s.accuracy.median - base.accuracy.median
            s.matches_plain = abs(s.acc_delta) <= tolerance


@dataclass
class Summary:
    meta: dict[str, Any]
    stats: dict[tuple[str, str], ToolStats]
    tools: list[str]
    models: list[str]
    installs: list[dict[str, Any]]
    servers: list[dict[str, Any]]
    finished: bool
    tolerance: float
    run_rows: list[dict[str, Any]]

    def for_model(self, model: str) -> list[ToolStats]:
        return [self.stats[(t, model)] for t in self.tools if (t, model) in self.stats]


def summarize(rows: list[dict[str, Any]]) -> Summary:
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    runs = [r for r in rows if r.get("kind") == "run"]
    tolerance = float(meta.get("tolerance", 0.005))
    tools: list[str] = []
    for t in [*meta.get("tools", []), *(r.get("tool") for r in runs)]:
        if t and t not in tools:
            tools.append(t)
    tools.sort(key=lambda t: t != "plain")  # plain first, otherwise the requested order
    models: list[str] = []
    for r in runs:
        if str(r.get("model")) not in models:
            models.append(str(r.get("model")))
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        grouped.setdefault((str(r.get("tool")), str(r.get("model"))), []).append(r)
    stats = {key: tool_stats(key[0], key[1], group) for key, group in grouped.items()}
    compare_to_plain(stats, tolerance)
    return Summary(
        meta=meta,
        stats=stats,
        tools=tools,
        models=models,
        installs=[r for r in rows if r.get("kind") == "install"],
        servers=[r for r in rows if r.get("kind") == "server"],
        finished=any(r.get("kind") == "end" for r in rows),
        tolerance=tolerance,
        run_rows=runs,
    )
