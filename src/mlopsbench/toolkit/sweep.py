"""The sweep's record, the same for every tool: trials, best trial, what the store holds.

A tool's sweep module runs its fan-out, reads the trials back through the tool's own API, and
ends with::

    return sweep_record(recorder, trials=read_back, evaluation=best_evaluation,
                        stored_trials=len(runs_found_in_the_store), ...)

``trials`` are ``run_trial`` results (``{"trial", "metrics", "seconds", ...}``) as the tool
handed them over (artifacts, XComs, outputs); ``stored_trials`` is how many trials a query of
the tool's store returned after the run (None where the tool keeps no queryable record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlopsbench.result import RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.usecases.sweep.stages import select_best, trial_table


def sweep_summary(
    cfg: Any, trials: Sequence[Mapping[str, Any]], stored_trials: int | None
) -> dict[str, Any]:
    """``tool_info["sweep"]``: every trial (best first), the best, parallelism, the store."""
    rows = trial_table([dict(t) for t in trials])
    return {
        "planned": int(cfg.trials),
        "finished": len(rows),
        "workers": int(cfg.workers),
        "best": rows[0] if rows else None,
        "trials": rows,
        "trial_seconds": sum(row["seconds"] for row in rows),
        "stored_trials": stored_trials,
        "queryable": stored_trials is not None and stored_trials >= int(cfg.trials),
    }


def sweep_record(
    recorder: RunRecorder,
    *,
    trials: Sequence[Mapping[str, Any]],
    evaluation: Mapping[str, Any],
    stored_trials: int | None,
    data: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, str] | None = None,
    tool_info: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
) -> RunResult:
    """The RunResult of a finished sweep: the best trial's evaluation, gate and history."""
    summary = sweep_summary(recorder.cfg, trials, stored_trials)
    best = select_best([dict(t) for t in trials])
    core: dict[str, float] = {"trials": summary["trial_seconds"]}
    for key, stage in (("data", data), ("evaluate", evaluation)):
        if stage and isinstance(stage.get("seconds"), int | float):
            core[key] = float(stage["seconds"])
    found = {"model": str(best["model_dir"]), **dict(evaluation.get("artifacts") or {})}
    if data and data.get("data_path"):
        found["data"] = str(data["data_path"])
    if best.get("history_path"):
        found["history"] = str(best["history_path"])
    return recorder.finish(
        metrics=dict(evaluation["metrics"]),
        gate=evaluation.get("gate"),
        artifacts={**found, **dict(artifacts or {})},
        tool_info={**dict(tool_info or {}), "sweep": summary},
        history=best.get("history") or [],
        timings={**core, **dict(timings or {})},
    )
