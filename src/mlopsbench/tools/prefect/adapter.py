"""Prefect's adapter: run a use case's flow in a worker process, read it back with the client.

``run(request)`` calls ``pipeline/<use case>_flow.py``'s flow once in a child process
(``worker.py``) with its own ``PREFECT_HOME`` under the run folder: Prefect starts a temporary
local API for the run (SQLite in ``prefect_home/``), tasks persist their results to
``results/`` and write their files to ``flow-runs/<flow run id>/``. The worker then reads the
flow run back through ``prefect.client.orchestration.get_client`` (states, parameters, task
runs with their persisted results, artifacts), and the record is built from that.
``evidence(result)`` reads the run back again, in a new worker, and checks what Prefect stored.

Options (``RunRequest.options``, strings): ``prefect_api_url`` (else ``$PREFECT_API_URL``):
run against that Prefect server instead of a temporary API, so the run shows in its UI;
``threads`` (OMP/MKL threads of the flow's process); ``timeout_s`` (the whole flow run,
default 3600).

Timings: the core stages' own ``seconds``, read from the persisted results of the tasks that
ran them (``data``, ``train``/``model``, ``evaluate``); ``tracking``, what ``log_to_mlflow``
reported; ``prefect_overhead``, the flow call minus those; ``import`` (Prefect and the flow
module), ``api_start`` (the temporary API up, or the server checked), ``readback``, and
``worker_start`` / ``worker_exit`` (the child's interpreter start-up and exit).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.options import positive_float_option, thread_env
from mlopsbench.toolkit.record import RunRecorder, core_timings, non_empty_dir
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.prefect import launch
from mlopsbench.tools.prefect.environment import RunLayout, api_url, prefect_env
from mlopsbench.tools.prefect.readback import FlowRunRecord
from mlopsbench.usecases.common.usecase import STAGES, UseCase

GATE_TASK = "quality_gate"
TRACKING_TASK = "log_to_mlflow"
PROMOTE_TASK = "promote_model"
DEFAULT_TIMEOUT_S = 3600.0
READBACK_TIMEOUT_S = 600.0


def run(request: RunRequest) -> RunResult:
    """Run the use case's flow once and return the common result record."""
    recorder = RunRecorder("prefect", request, distributions=get_tool("prefect").distributions)
    api = preflight(request, recorder.usecase)
    timeout_s = positive_float_option(request.options, "timeout_s", DEFAULT_TIMEOUT_S)
    layout = RunLayout(Path(request.out_dir).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    parameters = launch.flow_parameters(request.config, layout, request.tracking_uri)
    worker = launch.run_worker(
        "run",
        {"usecase": recorder.usecase.name, "parameters": parameters},
        prefect_env(layout, api, extra=thread_env(request.options)),
        layout.root,
        layout.log,
        timeout_s,
    )
    record = FlowRunRecord.from_dict(worker["record"])
    return _result(recorder, layout, worker, record, api)


def preflight(request: RunRequest, usecase: UseCase) -> str | None:
    """Inputs that cannot work fail here, in one line, before the run folder exists: missing
    local data, an unreachable MLflow server, an unreachable Prefect server."""
    launch.flow_file(usecase.name)
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)
    api = api_url(request.options)
    if api:
        launch.check_api(api)
    return api


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
    data, model, evaluation = (record.result_of(stage) for stage in STAGES)
    info = _tool_info(layout, worker, record, data, model, evaluation)
    info["server_api_url"] = api  # None: a temporary API, gone with the run
    common: dict[str, Any] = {
        "artifacts": _artifacts(layout, data, model, evaluation),
        "tool_info": info,
        "history": model.get("history") or [],
        "timings": _timings(recorder.usecase, worker, record),
    }
    error = failure_message(record, evaluation)
    if error is not None:
        return recorder.failed(error, metrics=evaluation.get("metrics"), **common)
    return recorder.finish(
        metrics=evaluation.get("metrics") or {},
        gate=evaluation.get("gate"),
        model=model.get("model_name"),
        params=record.parameters.get("config"),
        **common,
    )


def failure_message(record: FlowRunRecord, evaluation: Mapping[str, Any]) -> str | None:
    """Why the flow run failed; None when it completed, or failed at the quality gate only
    (then the gate's verdict makes the status)."""
    if record.completed:
        return None
    failed = record.failed_tasks()
    if failed == [GATE_TASK] and (evaluation.get("gate") or {}).get("passed") is False:
        return None
    where = f" in task {failed[0]}" if failed else ""
    message = record.tasks[failed[0]].message if failed else record.message
    text = " ".join(str(message or f"ended in state {record.state_name}").split())
    return f"prefect flow run {record.name}{where} failed: {text}"


def _timings(usecase: UseCase, worker: dict[str, Any], record: FlowRunRecord) -> dict[str, float]:
    inner = {k: float(v) for k, v in (worker.get("timings") or {}).items()}
    timings = {k: inner[k] for k in ("import", "api_start") if k in inner}
    core = core_timings(usecase, {stage: record.result_of(stage) for stage in STAGES})
    timings.update(core)
    in_tasks = sum(core.values())
    tracking = record.result_of(TRACKING_TASK).get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
        in_tasks += float(tracking)
    timings["prefect_overhead"] = max(inner.get("flow_call", 0.0) - in_tasks, 0.0)
    timings["readback"] = inner.get("readback", 0.0)
    # Interpreter start-up before the worker's main() and exit after its result was written.
    started, finished = worker.get("started_at"), worker.get("finished_at")
    timings["worker_start"] = max(float(started or 0.0) - float(worker["spawned_at"]), 0.0)
    timings["worker_exit"] = max(float(worker["exited_at"]) - float(finished or 0.0), 0.0)
    return timings


def _artifacts(
    layout: RunLayout,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> dict[str, str]:
    found = {
        "data": data.get("data_path"),
        "model": model.get("model_dir"),
        "history": model.get("history_path"),
        **(evaluation.get("artifacts") or {}),
        "prefect_home": str(layout.home),
        "results": str(layout.results),
        "prefect_log": str(layout.log),
    }
    return {name: str(path) for name, path in found.items() if path}


def _tool_info(
    layout: RunLayout,
    worker: dict[str, Any],
    record: FlowRunRecord,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "flow": record.flow_name,
        "flow_run_id": record.id,
        "flow_run_name": record.name,
        "state": record.state_name,
        "state_message": record.message,
        "api_url": worker.get("api_url"),
        "run_dir": str(layout.root),
        "prefect_home": str(layout.home),
        "results": str(layout.results),
        "files": str(layout.work_dir / record.id),
        "prefect_version": worker.get("prefect_version"),
        "task_states": {name: task.state_type for name, task in record.tasks.items()},
        "task_run_counts": {name: task.run_count for name, task in record.tasks.items()},
        "task_overhead_s": _task_overheads(record),
        "artifact_keys": sorted({a["key"] for a in record.artifacts if a.get("key")}),
        "promoted": PROMOTE_TASK in record.tasks and record.tasks[PROMOTE_TASK].completed,
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds")},
        **{k: model[k] for k in ("precision", "device") if k in model},  # digits
    }
    if evaluation.get("inference"):  # sentiment: precision actually used, throughput
        info["inference"] = evaluation["inference"]
    tracked = record.result_of(TRACKING_TASK)
    if tracked:
        info["mlflow"] = {k: tracked.get(k) for k in ("run_id", "experiment_id", "model_uri")}
    return info


def _task_overheads(record: FlowRunRecord) -> dict[str, float]:
    """Per completed task: its run time in Prefect minus the seconds its core stage reported."""
    overheads = {}
    for name, task in record.tasks.items():
        if task.completed:
            seconds = record.result_of(name).get("seconds") if name in STAGES else None
            core = float(seconds) if isinstance(seconds, int | float) else 0.0
            overheads[name] = max(task.total_run_time_s - core, 0.0)
    return overheads


# ---------------------------------------------------------------------------------------------
# evidence: what Prefect itself recorded
# ---------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Read the flow run back through Prefect's client, in a new worker, and check it."""
    record = read_back(result)
    if record is None:
        return dict.fromkeys(EVIDENCE_KEYS, False)
    return recorded_evidence(record, result)


def read_back(result: RunResult) -> FlowRunRecord | None:
    """The flow run of ``result`` as Prefect has it now (None when it cannot be read)."""
    from mlopsbench.errors import MlopsbenchError

    info = result.tool_info
    if not info.get("flow_run_id") or not info.get("run_dir"):
        return None
    layout = RunLayout(Path(info["run_dir"]))
    try:
        worker = launch.run_worker(
            "readback",
            {"flow_run_id": str(info["flow_run_id"])},
            prefect_env(layout, info.get("server_api_url")),
            layout.root,
            layout.root / "prefect_readback.log",
            READBACK_TIMEOUT_S,
        )
    except MlopsbenchError:
        return None
    return FlowRunRecord.from_dict(worker["record"])


def recorded_evidence(record: FlowRunRecord, result: RunResult) -> dict[str, bool]:
    data, model, evaluation = (record.result_of(stage) for stage in STAGES)
    expected_state = "COMPLETED" if result.status == "ok" else "FAILED"
    return {
        "params": _params_recorded(record, result),
        "per_epoch_metrics": history_recorded(record, result, "build_model"),
        "final_metrics": "accuracy" in (evaluation.get("metrics") or {})
        and bool(record.artifacts_of("markdown")),
        "model_artifact": non_empty_dir(model.get("model_dir")),
        "plots": any(a.get("png") for a in record.artifacts_of("image")),
        "lineage": bool(data.get("source"))
        and bool(data.get("digest"))
        and {"prepare_data", "build_model"} <= set(record.upstream_of("evaluate_model")),
        "run_state": record.state_type == expected_state and bool(record.tasks),
    }


def _params_recorded(record: FlowRunRecord, result: RunResult) -> bool:
    config = record.parameters.get("config")
    return isinstance(config, dict) and bool(config) and config == result.params


def history_recorded(record: FlowRunRecord, result: RunResult, task: str) -> bool:
    """The per-epoch table ``task`` published holds one row per epoch of the result."""
    tables = [a for a in record.artifacts_of("table") if a.get("task") == task]
    rows = tables[0].get("data") if tables else None
    if not isinstance(rows, list) or not rows:
        return False
    return all("epoch" in row for row in rows) and len(rows) == len(result.history)
