"""Prefect's sweep: ``pipeline/sweep_flow.py`` in a worker process, read back with the client.

``run(request)`` calls the sweep flow once, as the adapter calls the use cases' flows (a child
process with its own ``PREFECT_HOME``, a temporary local API), with the flow's task runner sized
by ``workers`` (``with_workers``: a ``ProcessPoolTaskRunner(max_workers=workers)``, one
thread in the flow's process for ``workers=1``), so ``run_trial.map`` runs that many trial task
runs at a time. The worker then reads the flow run
back through ``get_client()``: ``read_task_runs`` filtered by the flow run gives one
``run_trial`` task run per trial with its persisted result; those results are the trials of the
record and their count is ``stored_trials``. ``evidence(result)`` reads the run back again.

The same ``out_dir`` a second time is the same Prefect home and result storage: the flow's
cached tasks (``prepare``, ``run_trial``) then resume the earlier sweep (state ``Cached``).

Options: those of the adapter (``prefect_api_url``, ``threads``, ``timeout_s``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.options import positive_float_option, thread_env
from mlopsbench.toolkit.record import RunRecorder, non_empty_dir
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.prefect import adapter, launch
from mlopsbench.tools.prefect.environment import RunLayout, prefect_env
from mlopsbench.tools.prefect.readback import FAILED_STATES, FlowRunRecord, TaskRunRecord

TRIAL_TASK = "run_trial"
DATA_TASK = "prepare"
PLAN_TASK = "plan"
BEST_TASK = "select_best"
EVALUATE_TASK = "evaluate_best"


def run(request: RunRequest) -> RunResult:
    """Run the sweep flow once and return the sweep's record."""
    recorder = RunRecorder("prefect", request, distributions=get_tool("prefect").distributions)
    api = adapter.preflight(request, recorder.usecase)
    timeout_s = positive_float_option(request.options, "timeout_s", adapter.DEFAULT_TIMEOUT_S)
    layout = RunLayout(Path(request.out_dir).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    worker = launch.run_worker(
        "run",
        {
            "usecase": "sweep",
            "parameters": launch.flow_parameters(request.config, layout, request.tracking_uri),
            "workers": request.config.workers,
        },
        prefect_env(layout, api, extra=thread_env(request.options)),
        layout.root,
        layout.log,
        timeout_s,
    )
    record = FlowRunRecord.from_dict(worker["record"])
    return _result(recorder, layout, worker, record, api)


def stored_trials(record: FlowRunRecord) -> list[dict[str, Any]]:
    """The trials as Prefect stored them: each completed ``run_trial`` task run's result."""
    return [
        dict(run.result)
        for run in record.runs_of(TRIAL_TASK)
        if run.completed and isinstance(run.result, dict)
    ]


def failure_message(record: FlowRunRecord) -> str | None:
    """Why the flow run failed (naming the first failed task run); None when it completed or
    failed at the quality gate only (then the gate's verdict makes the status)."""
    if record.completed:
        return None
    failed = [(name, run) for name in record.tasks for run in record.runs_of(name) if _failed(run)]
    evaluation = record.result_of(EVALUATE_TASK)
    gate_failed = (evaluation.get("gate") or {}).get("passed") is False
    if [name for name, _ in failed] == [adapter.GATE_TASK] and gate_failed:
        return None
    where = f" in task run {failed[0][1].name}" if failed else ""
    message = failed[0][1].message if failed else record.message
    text = " ".join(str(message or f"ended in state {record.state_name}").split())
    return f"prefect flow run {record.name}{where} failed: {text}"


def _failed(run: TaskRunRecord) -> bool:
    return run.state_type in FAILED_STATES


# ---------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------


def _result(
    recorder: RunRecorder,
    layout: RunLayout,
    worker: dict[str, Any],
    record: FlowRunRecord,
    api: str | None,
) -> RunResult:
    info = _tool_info(layout, worker, record, api)
    artifacts = {
        "prefect_home": str(layout.home),
        "results": str(layout.results),
        "prefect_log": str(layout.log),
    }
    timings = _timings(worker, record)
    error = failure_message(record)
    trials = stored_trials(record)
    if error is not None or not trials:
        return recorder.failed(
            error or f"prefect flow run {record.name} stored no trial results",
            tool_info=info,
            artifacts=artifacts,
            timings=timings,
        )
    return sweep_record(
        recorder,
        trials=trials,
        evaluation=record.result_of(EVALUATE_TASK),
        data=record.result_of(DATA_TASK),
        stored_trials=len(trials),
        artifacts=artifacts,
        tool_info=info,
        timings=timings,
    )


def _timings(worker: dict[str, Any], record: FlowRunRecord) -> dict[str, float]:
    inner = {k: float(v) for k, v in (worker.get("timings") or {}).items()}
    timings = {k: inner[k] for k in ("import", "api_start", "flow_call", "readback") if k in inner}
    tracking = record.result_of(adapter.TRACKING_TASK).get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
    started, finished = worker.get("started_at"), worker.get("finished_at")
    timings["worker_start"] = max(float(started or 0.0) - float(worker["spawned_at"]), 0.0)
    timings["worker_exit"] = max(float(worker["exited_at"]) - float(finished or 0.0), 0.0)
    return timings


def _tool_info(
    layout: RunLayout, worker: dict[str, Any], record: FlowRunRecord, api: str | None
) -> dict[str, Any]:
    workers = int(record.parameters.get("config", {}).get("workers") or 1)
    info: dict[str, Any] = {
        "flow": record.flow_name,
        "flow_run_id": record.id,
        "flow_run_name": record.name,
        "state": record.state_name,
        "state_message": record.message,
        "api_url": worker.get("api_url"),
        "server_api_url": api,  # None: a temporary API, gone with the run
        "run_dir": str(layout.root),
        "prefect_home": str(layout.home),
        "results": str(layout.results),
        "files": str(layout.work_dir / record.id),
        "prefect_version": worker.get("prefect_version"),
        "task_runner": f"{worker.get('task_runner')}(max_workers={workers})",
        "task_states": {name: task.state_type for name, task in record.tasks.items()},
        "task_state_names": {name: task.state_name for name, task in record.tasks.items()},
        "trial_runs": [_trial_run(run) for run in record.runs_of(TRIAL_TASK)],
        "artifact_keys": sorted({a["key"] for a in record.artifacts if a.get("key")}),
        "promoted": adapter.PROMOTE_TASK in record.tasks
        and record.tasks[adapter.PROMOTE_TASK].completed,
    }
    tracked = record.result_of(adapter.TRACKING_TASK)
    if tracked:
        info["mlflow"] = {k: tracked.get(k) for k in ("run_id", "experiment_id", "model_uri")}
    return info


def _trial_run(run: TaskRunRecord) -> dict[str, Any]:
    """One trial's task run as Prefect has it: its state (``Cached`` on a resume), tries, times."""
    return {
        "name": run.name,
        "state_type": run.state_type,
        "state_name": run.state_name,
        "run_count": run.run_count,
        "start_time": run.start_time,
        "end_time": run.end_time,
    }


# ---------------------------------------------------------------------------------------------
# evidence: what Prefect itself recorded
# ---------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Read the sweep's flow run back through Prefect's client, in a new worker, and check it."""
    record = adapter.read_back(result)
    if record is None:
        return dict.fromkeys(EVIDENCE_KEYS, False)
    return recorded_evidence(record, result)


def recorded_evidence(record: FlowRunRecord, result: RunResult) -> dict[str, bool]:
    data, best = record.result_of(DATA_TASK), record.result_of(BEST_TASK)
    evaluation = record.result_of(EVALUATE_TASK)
    expected_state = "COMPLETED" if result.status == "ok" else "FAILED"
    trials = record.runs_of(TRIAL_TASK)
    return {
        "params": record.parameters.get("config") == result.params and bool(result.params),
        "per_epoch_metrics": adapter.history_recorded(record, result, EVALUATE_TASK),
        "final_metrics": "accuracy" in (evaluation.get("metrics") or {})
        and bool(record.artifacts_of("markdown")),
        "model_artifact": non_empty_dir(best.get("model_dir")),
        "plots": any(a.get("png") for a in record.artifacts_of("image")),
        "lineage": bool(data.get("source"))
        and bool(data.get("digest"))
        and bool(trials)
        # Prefect 3.9's process pool keeps the mapped input (plan) as a trial's upstream, not
        # the unmapped data: the data's lineage is the evaluation's.
        and all(PLAN_TASK in run.upstream for run in trials)
        and TRIAL_TASK in record.upstream_of(BEST_TASK)
        and {DATA_TASK, BEST_TASK} <= set(record.upstream_of(EVALUATE_TASK)),
        "run_state": record.state_type == expected_state and bool(trials),
    }
