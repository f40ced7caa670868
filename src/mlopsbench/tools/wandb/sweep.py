"""W&B's sweep: ``pipeline/sweep.py`` in this process, offline, every run read back with wandb's
own reader.

W&B's sweep machinery (``wandb.sweep``, ``wandb.agent``, the local controller) needs the W&B
server, which offline runs do not have: ``wandb.sweep`` stops at "No API key configured", and
the local controller (``wandb.controller()``, extra ``wandb[sweeps]``) only writes its schedule
into the server's sweep object. So the sweep is W&B's documented grouping of related runs: one
offline run per trial in the sweep's ``group`` (``job_type="trial"``), and one ``evaluate`` run
with the best model; ``workers`` is the size of the script's own process pool (W&B has no
executor). Every file stays in the request's run folder (the adapter's ``offline_wandb``).

``stored_trials`` is how many finished ``trial`` runs of the group the run folder holds, as
``wandb leet inspect`` reads them (group, job type, config, history, summary, start time and
runtime); :func:`evidence` reads the ``evaluate`` run and the best trial's run again.
"""

from __future__ import annotations

import functools
import importlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import one_line
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.wandb import adapter, readback
from mlopsbench.tools.wandb.readback import OfflineRun

TOOL = "wandb"
SWEEP_MODULE = "mlopsbench.tools.wandb.pipeline.sweep"
NO_SERVER_SWEEP = (
    "wandb.sweep/wandb.agent and the local controller need the W&B server: trials are "
    "offline runs of one group, run by the script's process pool"
)

__all__ = ["evidence", "read_group", "read_run", "run", "run_header", "run_times"]


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder(TOOL, request, distributions=get_tool(TOOL).distributions)
    adapter.preflight(request, recorder.usecase)
    with recorder.stage("import"):
        wandb = importlib.import_module("wandb")
        pipeline = importlib.import_module(SWEEP_MODULE)
    run_dir = Path(request.out_dir).resolve()
    started = time.perf_counter()
    try:
        with adapter.offline_wandb(wandb, run_dir):
            outcome = pipeline.run_sweep(request.config, run_dir)
    except MlopsbenchError:
        raise  # the user's input was bad: one line, as from every tool
    except Exception as exc:  # a trial or the evaluation failed: its run ended failed
        return recorder.failed(f"W&B sweep failed: {one_line(exc, 1000)}")
    launched = time.perf_counter() - started
    with recorder.stage("readback"):
        runs = read_group(run_dir, outcome["group"])
    result = record(recorder, pipeline.TRIAL, outcome, runs, launched)
    if request.tracking_uri:  # train.py's MLflow logging is not part of the sweep script
        result.tool_info["mlflow"] = {"logged": False, "reason": "the W&B sweep logs to W&B only"}
    return result


def read_group(run_dir: Path, group: str) -> dict[str, OfflineRun]:
    """Every offline run of the sweep's group in the run folder, by run id."""
    found: dict[str, OfflineRun] = {}
    # offline-run-<time>-<id>, not the latest-run link to one of them
    for folder in sorted((run_dir / readback.RUNS_FOLDER).glob("*run-*-*")):
        if folder.is_dir() and not folder.is_symlink() and any(folder.glob("run-*.wandb")):
            back = read_run(folder)
            if run_header(back).get("run_group") == group:
                found[back.run_id] = back
    return found


def read_run(folder: str | Path) -> OfflineRun:
    """wandb's reader, once per version of a run's log: a sweep has many runs and each read
    starts wandb-core twice, so the record and the evidence share what a finished log says."""
    stat = readback.run_file(folder).stat()
    return _read_version(str(folder), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read_version(folder: str, mtime_ns: int, size: int) -> OfflineRun:
    del mtime_ns, size  # the cache key: a log that changed is read again
    return readback.read_run(folder)


def run_header(back: OfflineRun) -> dict[str, Any]:
    """The run record ``wandb.init`` wrote: group, job type, name, start time."""
    headers = back.of_type("run")
    return headers[0] if headers else {}


def run_times(back: OfflineRun) -> tuple[float, float] | None:
    """(start, end) in epoch seconds, as W&B recorded them: the run's start time and its
    ``_runtime`` in the summary."""
    start, runtime = back.overview.get("start_time"), back.summary.get("_runtime")
    if not isinstance(start, str) or not isinstance(runtime, int | float):
        return None
    began = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    return began, began + float(runtime)


def record(
    recorder: RunRecorder,
    trial_job: str,
    outcome: dict[str, Any],
    runs: dict[str, OfflineRun],
    launched: float,
) -> RunResult:
    trials = [
        b
        for b in runs.values()
        if run_header(b).get("job_type") == trial_job and b.state == "finished"
    ]
    evaluated = runs.get(outcome["run_id"])
    model = evaluated.artifact("model") if evaluated else {}
    best = outcome["evaluation"]["best"]
    best_id = next(r["run_id"] for r in outcome["trials"] if r["trial"] == best)
    tool_info = {
        "group": outcome["group"],
        "project": evaluated.overview.get("project") if evaluated else None,
        "run_id": outcome["run_id"],
        "run_folder": str(evaluated.file.parent) if evaluated else None,
        "best_run_id": best_id,
        "best_run_folder": str(runs[best_id].file.parent) if best_id in runs else None,
        "trial_runs": {b.overview.get("name"): b.run_id for b in trials},
        "trial_span_s": trial_span_s(trials),
        "model_aliases": list(model.get("aliases") or []),
        "dataset": {k: v for k, v in outcome["data"].items() if k not in ("data_path", "seconds")},
        "sweep_controller": NO_SERVER_SWEEP,
        "reader": adapter.READER,
        "sweep_seconds": launched,
    }
    return sweep_record(
        recorder,
        trials=outcome["trials"],
        evaluation=outcome["evaluation"],
        data=outcome["data"],
        stored_trials=len(trials),
        artifacts={"wandb_run": str(evaluated.file)} if evaluated else None,
        tool_info=tool_info,
    )


def trial_span_s(trials: list[OfflineRun]) -> float | None:
    """First trial start to last trial end, from the times W&B recorded."""
    times = [run_times(b) for b in trials]
    if not times or any(t is None for t in times):
        return None
    return max(t[1] for t in times if t) - min(t[0] for t in times if t)


# ------------------------------------------------------------------------------------------
# evidence: the evaluate run and the best trial's run, read again with wandb's reader
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    info = result.tool_info
    folders = [info.get("run_folder"), info.get("best_run_folder")]
    if not all(folder and Path(folder).is_dir() for folder in folders):
        return dict.fromkeys(EVIDENCE_KEYS, False)
    evaluated, best = (read_run(str(folder)) for folder in folders)
    return {
        "params": adapter._has_params(evaluated, result) and _best_has_params(best, result),
        "per_epoch_metrics": adapter._has_history(best, result),
        "final_metrics": adapter._has_final_metrics(evaluated, result),
        "model_artifact": adapter._has_model(evaluated),
        "plots": adapter._has_plots(evaluated),
        "lineage": adapter._has_lineage(evaluated, result),
        "run_state": all(
            b.state == ("failed" if result.status == "failed" else "finished")
            for b in (evaluated, best)
        ),
    }


def _best_has_params(best: OfflineRun, result: RunResult) -> bool:
    """The best trial's run has the best trial's point of the space as its config."""
    chosen = (result.tool_info.get("sweep") or {}).get("best") or {}
    keys = ("model", "lr", "batch_size")
    return bool(chosen) and all(best.config.get(k) == chosen.get(k) for k in keys)
