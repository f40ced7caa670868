"""The sweep scenario on ZenML: ``pipeline/sweep_pipeline.py`` (a dynamic pipeline whose
``run_trial.map`` fans out over the planned trials) in a worker process, read back with the
Client.

``run(request)`` starts ``python -m mlopsbench.tools.zenml.worker sweep`` in the run folder with
its own ZenML configuration and store, as a run does (``launch``). ``workers`` is ZenML's own
parallelism: the dynamic pipeline runner's thread pool (``$ZENML_DYNAMIC_PIPELINE_WORKER_COUNT``)
in which the local orchestrator runs the mapped trial steps. The worker reads the run back
through ``zenml.client.Client``: every ``run_trial`` step run's ``trial_result`` artifact (the
trials the record holds; their number is ``stored_trials``), the data and evaluation outputs,
the model version, the attempts per step. ``evidence(result)`` is the adapter's: a new worker
judges the run from what ZenML stored.

Threads share one process: the core's training seeds torch's process-wide generator and its
dropout draws from it, so trials that run side by side (workers > 1) can draw each other's
numbers; ``tool_info["parallelism"]`` says so. At ``workers`` = 1 the trials are the core's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.zenml import adapter
from mlopsbench.tools.zenml.launch import Layout, run_worker

__all__ = ["evidence", "run"]

evidence = adapter.evidence
WORKER_COUNT_ENV = "ZENML_DYNAMIC_PIPELINE_WORKER_COUNT"
PARALLELISM = (
    "threads of the dynamic pipeline runner in one process ({env}={n}); the local "
    "orchestrator has no process pool, and its static pipelines run steps one at a time"
)


def run(request: RunRequest) -> RunResult:
    """Run the sweep's pipeline once and return the common sweep record."""
    recorder = RunRecorder("zenml", request, distributions=get_tool("zenml").distributions)
    adapter._preflight(request, recorder.usecase)
    layout = Layout(Path(request.out_dir).resolve())
    workers = int(request.config.workers)
    env = {**adapter._env(layout, request.options), WORKER_COUNT_ENV: str(workers)}
    timeout = adapter._timeout(request.options)
    worker = run_worker("sweep", adapter._run_request(request), layout, env, timeout)
    record = worker["record"]
    outputs = record["outputs"]
    common: dict[str, Any] = {
        "artifacts": _artifacts(record, layout),
        "tool_info": _tool_info(record, worker, layout, workers),
        "timings": _timings(worker, record),
    }
    evaluation = outputs.get("evaluate_model")
    if record["status"] != "completed" or not record["trials"] or not evaluation:
        message = adapter.failure_message(record, worker.get("pipeline_error", ""))
        return recorder.failed(message, **common)
    return sweep_record(
        recorder,
        trials=record["trials"],
        evaluation=evaluation,
        data=outputs.get("prepare_data"),
        stored_trials=record["stored_trials"],
        **common,
    )


def _artifacts(record: Mapping[str, Any], layout: Layout) -> dict[str, str]:
    found = {
        "zenml_store": str(layout.store_db),
        "zenml_log": str(layout.log),
        **{f"zenml_{name}": uri for name, uri in record.get("artifacts", {}).items()},
    }
    return {name: str(path) for name, path in found.items() if path}


def _tool_info(
    record: Mapping[str, Any], worker: Mapping[str, Any], layout: Layout, workers: int
) -> dict[str, Any]:
    data = record["outputs"].get("prepare_data", {})
    return {
        "pipeline": record.get("pipeline"),
        "run_id": record["run_id"],
        "run_name": record["run_name"],
        "state": record["status"],
        "model_version": record.get("model_version"),
        "zenml_config": str(layout.config_dir),
        "zenml_store": str(layout.store_db),
        "zenml_version": worker.get("zenml_version"),
        "parallelism": PARALLELISM.format(env=WORKER_COUNT_ENV, n=workers),
        "deterministic_trials": workers == 1,
        "cached_steps": [n for n, s in record["steps"].items() if s["status"] == "cached"],
        "steps": adapter.step_timings(record),
        "attempts": record.get("attempts", {}),
        "fan_in": record.get("fan_in", {}),
        "step_config": record.get("step_config", {}),
        "snapshot": record.get("snapshot", {}),
        "overhead": adapter.overhead_breakdown(record, worker),
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds")},
        "mlflow": record["outputs"].get(adapter.TRACKING_STAGE, {}),
    }


def _timings(worker: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, float]:
    """ZenML's phases around the pipeline and the MLflow step's own seconds (the core's
    stages are added by the record)."""
    inner = worker.get("timings") or {}
    timings = {k: float(inner[k]) for k in ("import", "store_init", "pipeline", "readback")}
    tracking = record["outputs"].get(adapter.TRACKING_STAGE, {}).get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
    timings["worker_start"] = max(float(worker["started_at"]) - float(worker["spawned_at"]), 0.0)
    timings["worker_exit"] = max(float(worker["exited_at"]) - float(worker["finished_at"]), 0.0)
    return timings
