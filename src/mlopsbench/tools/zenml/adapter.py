"""ZenML's adapter: run a use case's pipeline in a worker process, read it back with the Client.

``run(request)`` starts ``python -m mlopsbench.tools.zenml.worker run`` in the request's run
folder with its own ZenML configuration and store (``<run dir>/zenml``: SQLite store, the
default stack's local artifact store), step files under ``<run dir>/steps/<run name>/``; the
worker runs ``run_pipeline(cfg)`` of ``pipeline/<use case>_pipeline.py`` on the default local
stack and reads the run back through ``zenml.client.Client``; the record is built from that.
``evidence(result)`` asks a new worker to judge the run from what ZenML stored.

Timings: the core stages' own ``seconds``, read from the step outputs that hold what they
returned (``data``, ``train``/``model``, ``evaluate``; a cached step did not run and is left
out); ``tracking``, the MLflow step's own seconds; ``import`` (ZenML), ``store_init`` (opening
or creating the store and the default stack); ``zenml_overhead``, the pipeline call minus the
core and tracking seconds (``tool_info["overhead"]`` splits it by step-run timestamps);
``readback``; ``worker_start`` / ``worker_exit``, the child interpreter's start-up and exit.

Options (``RunRequest.options``, strings): ``threads`` (OMP/MKL threads of the worker),
``timeout_s`` (the whole worker, default 3600).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from mlopsbench import tracking
from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.options import positive_float_option, thread_env
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.zenml.launch import (
    DEFAULT_TIMEOUT_S,
    Layout,
    run_worker,
    zenml_env,
)
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.common.usecase import UseCase

TRACKING_STAGE = "log_to_mlflow"


def run(request: RunRequest) -> RunResult:
    """Run the use case's pipeline once and return the common result record."""
    recorder = RunRecorder("zenml", request, distributions=get_tool("zenml").distributions)
    _preflight(request, recorder.usecase)
    layout = Layout(Path(request.out_dir).resolve())
    env = _env(layout, request.options)
    worker = run_worker("run", _run_request(request), layout, env, _timeout(request.options))
    return _result(recorder, layout, worker)


def evidence(result: RunResult) -> dict[str, bool]:
    """What ZenML really recorded for this run, judged through its Client in a new worker."""
    info = result.tool_info
    config_dir, run_id = info.get("zenml_config"), info.get("run_id")
    if not config_dir or not run_id or not (Path(config_dir) / "config.yaml").is_file():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    layout = Layout(Path(config_dir).parent)
    request = {
        "run_id": run_id,
        "usecase": result.usecase,
        "params": result.params,
        "status": result.status,
    }
    try:
        found = run_worker("evidence", request, layout, _env(layout, {}))["evidence"]
    except MlopsbenchError:
        return dict.fromkeys(EVIDENCE_KEYS, False)
    return {key: bool(found.get(key)) for key in EVIDENCE_KEYS}


def _preflight(request: RunRequest, usecase: UseCase) -> None:
    """Bad local inputs and an unreachable tracking server fail here, before the run folder
    holds anything and before ZenML starts (the pipeline logs to MLflow in its last step)."""
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)
    _timeout(request.options)


def _run_request(request: RunRequest) -> dict[str, Any]:
    """What the worker runs: the core settings (flat, local paths made absolute: the pipeline
    runs in the run folder) and where MLflow is."""
    values = {
        name: str(Path(value).expanduser().resolve()) if name.endswith("_path") and value else value
        for name, value in flat_values(request.config).items()
    }
    uri = tracking.absolute_store_uri(request.tracking_uri) if request.tracking_uri else ""
    return {"usecase": request.usecase, "values": values, "mlflow_uri": uri}


def _env(layout: Layout, options: Mapping[str, str]) -> dict[str, str]:
    # The pipeline decides from its mlflow_uri parameter alone, not from the caller's env.
    return zenml_env(layout.config_dir, {"MLFLOW_TRACKING_URI": "", **thread_env(options)})


def _timeout(options: Mapping[str, str]) -> float:
    return positive_float_option(options, "timeout_s", DEFAULT_TIMEOUT_S)


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------


def _result(recorder: RunRecorder, layout: Layout, worker: dict[str, Any]) -> RunResult:
    record = worker["record"]
    outputs = _fresh_outputs(record)
    model_info = record["outputs"].get("build_model", {})
    evaluation = record["outputs"].get("evaluate_model", {})
    common: dict[str, Any] = {
        "artifacts": _artifacts(record, layout),
        "tool_info": _tool_info(record, worker, layout),
        "history": model_info.get("history") or [],
        "timings": _timings(recorder.usecase, worker, outputs),
    }
    if record["status"] != "completed":
        return recorder.failed(failure_message(record, worker.get("pipeline_error", "")), **common)
    return recorder.finish(
        metrics=evaluation.get("metrics", {}),
        gate=record.get("gate") or evaluation.get("gate"),
        model=model_info.get("model_name"),
        params=None,
        **common,
    )


def _fresh_outputs(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Outputs of the stages whose step ran in this run (a cached step's seconds are an
    earlier run's)."""
    steps = record["steps"]
    return {
        stage: output
        for stage, output in record["outputs"].items()
        if steps.get(record["stage_steps"].get(stage), {}).get("status") == "completed"
    }


def _timings(
    usecase: UseCase, worker: Mapping[str, Any], outputs: Mapping[str, Mapping[str, Any]]
) -> dict[str, float]:
    inner = worker.get("timings") or {}
    timings = {k: float(inner[k]) for k in ("import", "store_init") if k in inner}
    core = core_timings(usecase, outputs)
    timings.update(core)
    in_steps = sum(core.values())
    tracking = (outputs.get(TRACKING_STAGE) or {}).get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
        in_steps += float(tracking)
    timings["zenml_overhead"] = max(float(inner.get("pipeline", 0.0)) - in_steps, 0.0)
    timings["readback"] = float(inner.get("readback", 0.0))
    timings["worker_start"] = max(float(worker["started_at"]) - float(worker["spawned_at"]), 0.0)
    timings["worker_exit"] = max(float(worker["exited_at"]) - float(worker["finished_at"]), 0.0)
    return timings


def _artifacts(record: Mapping[str, Any], layout: Layout) -> dict[str, str]:
    """Files the run left in its step folders, the store and the artifact store."""
    data = record["outputs"].get("prepare_data", {})
    model_info = record["outputs"].get("build_model", {})
    found = {
        "data": data.get("data_path"),
        "model": model_info.get("model_dir"),
        "history": model_info.get("history_path"),
        **record["outputs"].get("evaluate_model", {}).get("artifacts", {}),
        "zenml_store": str(layout.store_db),
        "zenml_log": str(layout.log),
        **{f"zenml_{name}": uri for name, uri in record.get("artifacts", {}).items()},
    }
    return {name: str(path) for name, path in found.items() if path}


def _tool_info(
    record: Mapping[str, Any], worker: Mapping[str, Any], layout: Layout
) -> dict[str, Any]:
    data = record["outputs"].get("prepare_data", {})
    model_info = record["outputs"].get("build_model", {})
    evaluation = record["outputs"].get("evaluate_model", {})
    info: dict[str, Any] = {
        "pipeline": record.get("pipeline"),
        "run_id": record["run_id"],
        "run_name": record["run_name"],
        "state": record["status"],
        "model_version": record.get("model_version"),
        "zenml_config": str(layout.config_dir),
        "zenml_store": str(layout.store_db),
        "zenml_version": worker.get("zenml_version"),
        "cached_steps": [n for n, s in record["steps"].items() if s["status"] == "cached"],
        "steps": step_timings(record),
        "overhead": overhead_breakdown(record, worker),
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds")},
        "mlflow": record["outputs"].get(TRACKING_STAGE, {}),
        **{k: model_info[k] for k in ("precision", "device") if k in model_info},  # digits
    }
    if evaluation.get("inference"):  # sentiment: precision actually used, throughput
        info["inference"] = evaluation["inference"]
    return info


def _core_seconds_by_step(record: Mapping[str, Any]) -> dict[str, float]:
    steps = record["stage_steps"]
    return {
        steps[stage]: float(out.get("seconds") or 0.0)
        for stage, out in _fresh_outputs(record).items()
    }


def step_timings(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Seconds per step run (from ZenML's timestamps) and how much of it was not core work."""
    core = _core_seconds_by_step(record)
    table = {}
    for name, step in record["steps"].items():
        seconds = _seconds(step)
        table[name] = {
            "status": step["status"],
            "seconds": round(seconds, 3) if seconds is not None else None,
            "core_seconds": round(core.get(name, 0.0), 3),
            "overhead_s": round(seconds - core.get(name, 0.0), 3) if seconds is not None else None,
        }
    return table


def overhead_breakdown(record: Mapping[str, Any], worker: Mapping[str, Any]) -> dict[str, Any]:
    """Where ZenML's own time in the pipeline call goes, from step-run timestamps.

    ``before_steps_s``: from calling the pipeline to its first step (compiling the pipeline,
    the snapshot, the run and its model version in the store); ``in_steps_s``: inside step
    runs but outside the core (input artifacts loaded, outputs saved to the artifact store
    and registered, metadata); ``between_steps_s``: gaps between one step ending and the next
    starting; ``after_steps_s``: from the last step to the call returning. ``step_median_s``:
    the median of in-step overhead over the steps that ran a core stage.
    """
    done = sorted(
        (s for s in record["steps"].values() if s["started"] and s["finished"]),
        key=lambda s: s["started"],
    )
    started, returned = worker.get("pipeline_started_at"), worker.get("pipeline_returned_at")
    if not done or not started or not returned:
        return {}
    table = step_timings(record)
    per_step = [row["overhead_s"] for row in table.values() if row["core_seconds"] > 0]
    between = sum(max(0.0, b["started"] - a["finished"]) for a, b in pairwise(done))
    return {
        "before_steps_s": round(done[0]["started"] - started, 3),
        "in_steps_s": round(sum(r["overhead_s"] or 0.0 for r in table.values()), 3),
        "between_steps_s": round(between, 3),
        "after_steps_s": round(returned - done[-1]["finished"], 3),
        "step_median_s": round(statistics.median(per_step), 3) if per_step else None,
    }


def _seconds(step: Mapping[str, Any]) -> float | None:
    if step.get("started") is None or step.get("finished") is None:
        return None
    return float(step["finished"]) - float(step["started"])


def failure_message(record: Mapping[str, Any], pipeline_error: str) -> str:
    """One line: the run, the step that failed and its exception."""
    failed = [(n, s) for n, s in record["steps"].items() if s["status"] == "failed"]
    if not failed:
        reason = pipeline_error or f"ended in state {record['status']}"
        return f"zenml run {record['run_name']} failed: {reason}"
    name, step = failed[0]
    return f"zenml run {record['run_name']} failed in step {name}: {step['error'] or 'no message'}"
