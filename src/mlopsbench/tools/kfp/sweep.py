"""The sweep scenario on KFP: ``pipeline/sweep_pipeline.py`` run by ``kfp.local``, read back.

The fan-out is KFP's own: ``dsl.ParallelFor`` over the trials ``plan-sweep`` returns, with
``parallelism`` = the sweep's ``workers`` (compiled into the loop's ``iteratorPolicy``), and a
``dsl.Collected`` fan-in. kfp.local (2.17.3) runs that loop itself, iterations in a thread
pool, each a ``SubprocessRunner`` process; the pool is capped at 2 threads whatever the
parallelism says (``ParallelExecutor.conservative_max``), so locally ``--workers 4`` runs 2
trials at a time while a cluster would run 4.

Read-back: every task's ``executor_output.json`` under the pipeline root (what KFP recorded:
each trial's ``model`` artifact carries what ``run_trial`` returned as metadata, the best's
copy is ``select-best-trial``'s ``best`` output, the evaluation is ``evaluate-best-trial``'s).
kfp.local keeps no run database; these files are its only store, so ``stored_trials`` counts
the trial outputs found there. How many trials ran at once: their core windows, each ending
when KFP wrote its output.

The best trial passes the quality gate (``dsl.If``) into the shared ``promote-model``, which
also logs it to MLflow given ``request.tracking_uri``, as the digits pipeline does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.kfp.adapter import (
    EXECUTOR_OUTPUT,
    PROMOTION_OUTPUT,
    LocalRun,
    Outputs,
    _check_tracking,
    _evaluation_files,
    _read_log,
    _run_locally,
    _scalars,
    _task_seconds,
    _writable_dir,
)
from mlopsbench.tools.kfp.build import KfpSettings, pipeline_arguments
from mlopsbench.tools.kfp.pipeline.component_helpers import trial_result
from mlopsbench.usecases.common.modelfiles import folder_holds_model

TRIAL_TASK = "run-sweep-trial"
STAGE_TASKS = ("prepare-sweep-data", "plan-sweep", "select-best-trial", "evaluate-best-trial")
# promote-model runs behind the quality gate (dsl.If), so it is not a stage every run has.
_ITERATION = re.compile(r"-iteration-(\d+)/")
Window = tuple[float, float]


def run(request: RunRequest) -> RunResult:
    from mlopsbench.tools.kfp.pipeline.sweep_pipeline import build_pipeline

    recorder = RunRecorder("kfp", request, distributions=get_tool("kfp").distributions)
    cfg = request.config
    out = Path(request.out_dir).resolve()
    settings = KfpSettings(image=request.options.get("image") or KfpSettings.from_env().image)
    recorder.usecase.check_inputs(cfg)
    _check_tracking(request.tracking_uri)
    root = _writable_dir(Path(request.options.get("pipeline_root") or out / "pipeline_root"))
    arguments = {
        **pipeline_arguments(cfg),
        "mlflow_uri": request.tracking_uri or "",
        "run_name": f"kfp-sweep-{out.name}",
    }
    with recorder.stage("setup"):
        pipeline = build_pipeline(settings.image, workers=cfg.workers)
    local = _run_locally(pipeline, arguments, root, out)
    return _record(recorder, local, settings)


# ---- reading the run back ----------------------------------------------------------------


def trial_tasks(outputs: Outputs) -> dict[str, dict[str, Any]]:
    """Loop iteration task -> its trial's ``run_trial`` result, as KFP recorded it (the
    ``model`` output's uri and metadata), in iteration order."""
    found: dict[int, tuple[str, dict[str, Any]]] = {}
    for task, recorded in outputs.tasks.items():
        iteration = _ITERATION.search(task + "/")
        if iteration and task.endswith(f"/{TRIAL_TASK}") and "model" in recorded["artifacts"]:
            model = recorded["artifacts"]["model"]["artifacts"][0]
            found[int(iteration.group(1))] = (task, _trial(model))
    return dict(found[i] for i in sorted(found))


def _trial(model: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's result from its ``model`` artifact, through the helper the fan-in uses."""
    artifact = SimpleNamespace(metadata=dict(model.get("metadata") or {}), path=model["uri"])
    result = trial_result(artifact)
    result["history"] = _history(result.get("history_path"))
    return result


def _history(path: str | None) -> list[dict[str, float]]:
    if not path or not Path(path).is_file():
        return []
    rows = json.loads(Path(path).read_text())
    return rows if isinstance(rows, list) else []


def _evaluation(outputs: Outputs) -> dict[str, Any]:
    """What ``evaluate_best`` returned (the ``evaluation`` output's metadata), its files
    located under that output, and the full metrics KFP logged."""
    returned = outputs.metadata("evaluation")
    if not returned:
        return {}
    files = {name: str(path) for name, path in _evaluation_files(outputs).items()}
    return {**returned, "metrics": _scalars(outputs.metadata("metrics")), "artifacts": files}


def _data(outputs: Outputs) -> dict[str, Any]:
    path = outputs.path("dataset", "data_path")
    return {**outputs.metadata("dataset"), "data_path": str(path)} if path else {}


def trial_windows(run_dir: Path, trials: Mapping[str, Mapping[str, Any]]) -> list[Window]:
    """Each trial's core call as a (start, end) clock window: it ends when KFP wrote the
    task's ``executor_output.json`` and lasted the ``seconds`` the core measured. (KFP's log
    cannot tell: loop tasks share one name there, and parallel iterations lose log lines.)"""
    windows = []
    for task, result in trials.items():
        end = (run_dir / task / EXECUTOR_OUTPUT).stat().st_mtime
        windows.append((end - float(result.get("seconds", 0.0)), end))
    return windows


def most_overlapping(windows: list[Window]) -> int:
    """The most windows open at one instant: how many trials KFP really ran at once."""
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def covered_seconds(windows: list[Window]) -> float:
    """Seconds during which at least one window was open."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(windows):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def local_thread_cap() -> int | None:
    """kfp.local's cap on concurrent loop iterations (read from KFP; None if it moved)."""
    try:
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor
    except ImportError:
        return None
    cap = getattr(ParallelExecutor(), "conservative_max", None)
    return int(cap) if isinstance(cap, int) else None


def _record(recorder: RunRecorder, local: LocalRun, settings: KfpSettings) -> RunResult:
    outputs = Outputs.read(local.run_dir)
    trials = trial_tasks(outputs)
    evaluation = _evaluation(outputs)
    tool_info = _tool_info(recorder, local, outputs, trials, settings)
    if local.failure or not trials or not evaluation:
        error = local.failure or f"KFP sweep left no trials or evaluation (log: {local.log_path})"
        return recorder.failed(error, tool_info=tool_info, timings=_timings(tool_info))
    return sweep_record(
        recorder,
        trials=list(trials.values()),
        evaluation=evaluation,
        data=_data(outputs),
        stored_trials=len(trials),
        artifacts=_artifacts(outputs),
        tool_info=tool_info,
        timings=_timings(tool_info),
    )


def _artifacts(outputs: Outputs) -> dict[str, str]:
    """The best trial's copy (the fan-in's output) and the report, as KFP's outputs locate them."""
    found = {
        "best_model": outputs.path("best", "model_dir"),
        "report": outputs.path("report"),
        "promotion": outputs.path(PROMOTION_OUTPUT, "record"),
    }
    return {name: str(path) for name, path in found.items() if path is not None}


def _timings(tool_info: Mapping[str, Any]) -> dict[str, float]:
    """promote-model's task time (MLflow logging, when asked for, is not KFP's overhead) and
    KFP's overhead: pipeline time outside the core's own work (data, the trials' windows
    counted once where they overlap, evaluation) and the promotion: process starts, dispatch,
    bookkeeping."""
    timings: dict[str, float] = {}
    promote = tool_info["tasks_s"].get("promote-model")
    if isinstance(promote, float):
        timings["promote"] = promote
    timings["kfp_overhead"] = max(float(tool_info["outside_core_s"]) - (promote or 0.0), 0.0)
    return timings


def _tool_info(
    recorder: RunRecorder,
    local: LocalRun,
    outputs: Outputs,
    trials: Mapping[str, Mapping[str, Any]],
    settings: KfpSettings,
) -> dict[str, Any]:
    cfg = recorder.cfg
    # Loop tasks share one name in KFP's log: only the other tasks' times are unambiguous.
    tasks_s = {t: s for t, s in _task_seconds(_read_log(local.log_path)).items() if t != TRIAL_TASK}
    windows = trial_windows(local.run_dir, trials) if local.run_dir else []
    core = covered_seconds(windows) + sum(
        float(outputs.metadata(name).get("seconds") or 0.0) for name in ("dataset", "evaluation")
    )
    cap = local_thread_cap()
    planned = outputs.tasks.get("plan-sweep", {}).get("parameterValues", {}).get("Output")
    return {
        "pipeline": local.pipeline,
        "pipeline_root": str(local.root),
        "pipeline_run_dir": str(local.run_dir) if local.run_dir else None,
        "log": str(local.log_path),
        "image": settings.image,
        "executed": "dsl.ParallelFor + dsl.Collected run by kfp.local (SubprocessRunner), "
        "not only compiled",
        "fan_out": f"dsl.ParallelFor over plan-sweep's output, parallelism={cfg.workers}",
        "parallelism": int(cfg.workers),
        "local_thread_cap": cap,
        "local_parallelism": min(int(cfg.workers), cap) if cap else int(cfg.workers),
        "max_concurrent_trials": most_overlapping(windows),
        "planned_by_kfp": len(planned) if isinstance(planned, list) else None,
        "trial_tasks": {str(r["trial"]["name"]): task for task, r in trials.items()},
        "stage_tasks": {t: t in outputs.tasks for t in STAGE_TASKS},
        "tasks_s": tasks_s,
        "pipeline_s": local.seconds,
        "outside_core_s": max(local.seconds - core, 0.0),
        "store": "executor_output.json per task under the pipeline root (kfp.local keeps no "
        "run database; a cluster records the same outputs in ML Metadata)",
        "promoted": outputs.task_of(PROMOTION_OUTPUT) is not None,
        "mlflow": outputs.metadata(PROMOTION_OUTPUT).get("mlflow") or None,
    }


# ---- evidence ----------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """What KFP itself recorded for the sweep, re-read from the pipeline root."""
    run_dir = result.tool_info.get("pipeline_run_dir")
    outputs = Outputs.read(Path(run_dir) if run_dir else None)
    trials = trial_tasks(outputs)
    planned = outputs.tasks.get("plan-sweep", {}).get("parameterValues", {}).get("Output")
    recorded = [_outputs_of(outputs, task) for task in trials]
    pngs = [path for path in _evaluation_files(outputs).values() if path.suffix == ".png"]
    report = outputs.path("report")
    dataset = outputs.metadata("dataset")
    return {
        "params": bool(recorded) and all(r["model"].get("params") for r in recorded),
        "per_epoch_metrics": bool(recorded)
        and all(any(k.startswith("epoch") for k in r["history"]) for r in recorded),
        "final_metrics": "accuracy" in outputs.metadata("metrics"),
        "model_artifact": folder_holds_model(outputs.path("best", "model_dir")),
        "plots": bool(outputs.metadata("confusion").get("confusionMatrix"))
        and bool(pngs)
        and all(png.is_file() for png in pngs)
        and report is not None
        and report.is_file(),
        "lineage": bool(dataset.get("source")) and bool(dataset.get("digest")),
        "run_state": isinstance(planned, list)
        and len(trials) == len(planned)
        and all(task in outputs.tasks for task in STAGE_TASKS),
    }


def _outputs_of(outputs: Outputs, task: str) -> dict[str, dict[str, Any]]:
    """A task's output artifacts' metadata, by output name."""
    artifacts = outputs.tasks[task].get("artifacts", {})
    return {
        name: dict((listed.get("artifacts") or [{}])[0].get("metadata") or {})
        for name, listed in artifacts.items()
    }
