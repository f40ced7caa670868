"""Dagster's sweep: ``sweep_pipeline`` (a graph-backed asset mapping ``run_trial`` over a
``DynamicOut``) executed against the run folder's instance, read back from its event log.

``run(request)`` executes the job with ``execute_job`` on a reconstructable job, so Dagster's
own executor decides the parallelism: ``workers`` = 1 is the ``in_process`` executor (as the
adapter's runs), ``workers`` = N the ``multiprocess`` executor with ``max_concurrent`` = N (one
process per step, forked from a ``forkserver`` that preloaded the code location and torch: with
the default ``spawn`` every step imports them again, 99 s instead of 44 s for 8 trials here). The trials handed back are the mapped ``run_trial`` steps' outputs as the
event log keeps them (``STEP_OUTPUT`` metadata: the trial, its metrics, model folder, history,
seconds); ``stored_trials`` is how many mapped trial steps the run's step statistics hold as
succeeded. Evidence is the adapter's, judged from the same instance; a gate below its threshold
leaves the run SUCCESS there (the check is not blocking) with no champion.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.dagster import instance as dagster_instance
from mlopsbench.tools.dagster import launch
from mlopsbench.tools.dagster.adapter import UI_MODULE, preflight
from mlopsbench.tools.dagster.readback import (
    CHAMPION,
    GATE_CHECK,
    RunBack,
    asset_name,
    overhead_breakdown,
    read_run,
    recorded_evidence,
    step_timings,
)
from mlopsbench.usecases.registry import get_usecase

__all__ = ["evidence", "run"]

USECASE = "sweep"
TRIAL_STEP = "sweep_model.run_trial["  # a mapped step's key: sweep_model.run_trial[trial_00]
TRIAL_KEYS = ("trial", "metrics", "model_dir", "history_path", "history", "train_seconds")


def sweep_job() -> Any:
    """The job, for ``reconstructable``: worker processes import it again by this name."""
    return launch.resolve_job(launch.load_definitions(), USECASE)


def executor_config(workers: int) -> dict[str, Any]:
    """``workers`` as the job's executor: in-process for one, else processes forked from a
    server that imported the code location and torch once (Dagster's ``forkserver`` start
    method), rather than a fresh interpreter importing them again for every step."""
    if workers <= 1:
        return {"in_process": {}}
    preload = {"forkserver": {"preload_modules": [launch.DEFINITIONS_MODULE, "torch"]}}
    return {"multiprocess": {"max_concurrent": int(workers), "start_method": preload}}


def run_config(cfg: Any, tracking_uri: str | None, show_progress: bool) -> dict[str, Any]:
    config = launch.run_config(USECASE, cfg, tracking_uri, show_progress)
    return {**config, "execution": {"config": executor_config(cfg.workers)}}


def execute(
    instance: Any,
    config: dict[str, Any] | None,
    tags: dict[str, str] | None = None,
    reexecution: Any = None,
) -> launch.Materialised:
    """``execute_job`` of the reconstructable sweep job (a failed run does not raise);
    ``reexecution``: Dagster's ``ReexecutionOptions`` of an earlier run of the instance."""
    from dagster import execute_job, reconstructable

    began, started = time.perf_counter(), time.time()
    with execute_job(
        reconstructable(sweep_job),
        instance,
        run_config=config,
        tags=tags,
        raise_on_error=False,
        reexecution_options=reexecution,
    ) as result:
        run_id = result.run_id
    return launch.Materialised(run_id, started, time.time(), time.perf_counter() - began)


def run(request: RunRequest) -> RunResult:
    """Run the sweep once through Dagster and return the common sweep record."""
    recorder = RunRecorder("dagster", request, distributions=get_tool("dagster").distributions)
    preflight(request, recorder.usecase)
    with recorder.stage("import"):
        sweep_job()
    with recorder.stage("instance"):
        home = dagster_instance.prepare_home(Path(request.out_dir) / dagster_instance.HOME_DIR)
    config = run_config(request.config, request.tracking_uri, request.show_progress)
    with dagster_instance.open_instance(home) as instance:
        done = execute(instance, config, tags={"mlopsbench/tool": "dagster"})
        with recorder.stage("readback"):
            back = read_run(instance, done.run_id)
            trials, stored = read_trials(instance, done.run_id)
    return _record(recorder, home, back, trials, stored, done)


def read_trials(instance: Any, run_id: str) -> tuple[list[dict[str, Any]], int]:
    """The mapped trial steps' outputs (from their ``STEP_OUTPUT`` events' metadata), and how
    many trial steps the run's step statistics hold as succeeded."""
    from dagster import DagsterEventType

    trials = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event.step_key.startswith(TRIAL_STEP):
            values = {k: v.value for k, v in event.step_output_data.metadata.items()}
            trials.append({k: values[k] for k in (*TRIAL_KEYS, "seconds") if k in values})
    stats = instance.get_run_step_stats(run_id)
    succeeded = [s for s in stats if s.step_key.startswith(TRIAL_STEP) and _succeeded(s)]
    return trials, len(succeeded)


def trial_attempts(instance: Any, run_id: str) -> dict[str, int]:
    """Attempts per mapped trial step (more than one: Dagster retried it)."""
    return {
        s.step_key: int(s.attempts or 1)
        for s in instance.get_run_step_stats(run_id)
        if s.step_key.startswith(TRIAL_STEP)
    }


def evidence(result: RunResult) -> dict[str, bool]:
    """What Dagster recorded for the sweep, read back from the run folder's instance."""
    home, run_id = result.tool_info.get("dagster_home"), result.tool_info.get("run_id")
    if not home or not run_id or not (Path(home) / dagster_instance.INSTANCE_YAML).is_file():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    try:
        with dagster_instance.open_instance(Path(home)) as instance:
            back = read_run(instance, str(run_id))
    except MlopsbenchError:
        return dict.fromkeys(EVIDENCE_KEYS, False)
    record = {"params": result.params, "status": result.status}
    found = recorded_evidence(back, get_usecase(USECASE), record, Path(home))
    if result.status == "gate_failed":  # the gate does not fail the run: no champion instead
        gate = back.gate(USECASE) or {}
        found["run_state"] = (
            back.successful and gate.get("passed") is False and not back.asset(USECASE, CHAMPION)
        )
    return found


def _succeeded(stats: Any) -> bool:
    return stats.status is not None and stats.status.value == "SUCCESS"


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------


def _record(
    recorder: RunRecorder,
    home: Path,
    back: RunBack,
    trials: list[dict[str, Any]],
    stored: int,
    done: launch.Materialised,
) -> RunResult:
    data, _, evaluation = back.stage_outputs(USECASE).values()
    info = _tool_info(recorder, home, back, done)
    if not back.successful:
        return recorder.failed(back.failure_message(), tool_info=info, artifacts=_home(home))
    timings = {"dagster_execution": done.seconds}
    mlflow_step = back.steps.get(asset_name(USECASE, "mlflow_run"))
    if back.asset(USECASE, "mlflow_run") and mlflow_step and mlflow_step.seconds:
        timings["tracking"] = mlflow_step.seconds
    return sweep_record(
        recorder,
        trials=trials,
        evaluation=evaluation,
        data=data,
        stored_trials=stored,
        artifacts=_home(home),
        tool_info=info,
        timings=timings,
    )


def _home(home: Path) -> dict[str, str]:
    return {"dagster_home": str(home)}


def _tool_info(
    recorder: RunRecorder, home: Path, back: RunBack, done: launch.Materialised
) -> dict[str, Any]:
    workers = int(recorder.cfg.workers)
    return {
        "run_id": back.run_id,
        "job": back.job_name,
        "dagster_status": back.status,
        "dagster_home": str(home),
        "dagster_version": version("dagster"),
        "ui_command": f"DAGSTER_HOME={home} dagster dev -m {UI_MODULE} -h 127.0.0.1",
        "executor": next(iter(executor_config(workers))),
        "max_concurrent": workers,
        "materialised": sorted(back.materialised),
        "checks": back.checks,
        "gate_check": asset_name(USECASE, GATE_CHECK),
        "champion": back.asset(USECASE, CHAMPION) or None,
        "steps": step_timings(back, USECASE),
        "overhead": overhead_breakdown(back, USECASE, done.started, done.returned),
        "mlflow": {
            k: v
            for k, v in back.asset(USECASE, "mlflow_run").items()
            if k in ("run_id", "experiment_id", "model_uri")
        },
    }
