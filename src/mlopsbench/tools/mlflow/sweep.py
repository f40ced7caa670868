"""MLflow's sweep: ``pipeline/sweep.py`` in this process against the adapter's checked store,
its trials read back from the store with ``MlflowClient.search_runs``.

MLflow has no scheduler: ``workers`` is the size of the sweep script's own process pool (see
``pipeline/sweep.py``); what MLflow contributes is the record. The store is the adapter's
(``<runs>/mlflow/mlflow.db`` or ``request.tracking_uri``); the parent run is ended FAILED (with
the reason as a tag) when the sweep fails, as the adapter does for a run. ``stored_trials`` is
how many nested runs ``search_runs(filter_string="tags.mlflow.parentRunId = '<id>'")`` finds
under the parent run; their start and end times (MLflow's own) give the trials' span.
:func:`evidence` reads the parent run, the best trial's run and the model version back.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from mlopsbench import tracking
from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import one_line
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.mlflow import adapter

TOOL = "mlflow"
SWEEP_MODULE = "mlopsbench.tools.mlflow.pipeline.sweep"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag on a nested run

__all__ = ["evidence", "run", "stored_trials"]


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder(TOOL, request, distributions=get_tool(TOOL).distributions)
    recorder.usecase.check_inputs(request.config)
    root = adapter.store_root(request)
    uri = tracking.resolve_tracking_uri(request.tracking_uri, root)
    tracking.check_tracking_uri(uri)  # fail fast, before the import and any run
    with recorder.stage("import"):
        tracking.import_mlflow()  # telemetry off before MLflow's first import
        pipeline = importlib.import_module(SWEEP_MODULE)
    with recorder.stage("tracking"):
        client, experiment_id = tracking.open_experiment(uri, recorder.usecase.name, root)
    info = adapter.store_info(uri, experiment_id, recorder)
    tags = tracking.standard_tags(TOOL, recorder.usecase.name, adapter.run_tags(request))
    started = time.perf_counter()
    try:
        with adapter.timed_phases(recorder, pipeline), tracking.environment_kept():
            outcome = pipeline.run_sweep(request.config, request.out_dir, uri, tags=tags)
    except BaseException as exc:
        run_id = adapter.end_failed_run(client, request, exc)
        if isinstance(exc, MlopsbenchError | KeyboardInterrupt | SystemExit):
            raise
        return recorder.failed(
            f"MLflow sweep run {run_id} failed: {one_line(exc, 1000)}",
            tool_info={**info, "run_id": run_id, "run_status": "FAILED"},
        )
    wall = time.perf_counter() - started
    with recorder.stage("readback"):
        found = stored_trials(client, experiment_id, outcome["run_id"])
    return record(recorder, outcome, found, {**info, "sweep_seconds": wall})


def stored_trials(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    """The sweep's nested runs as MLflow's search finds them (the store's own query)."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.{PARENT_TAG} = '{parent_run_id}'",
            max_results=1000,
        )
    )


def record(
    recorder: RunRecorder, outcome: dict[str, Any], found: list[Any], info: dict[str, Any]
) -> RunResult:
    version, validation = outcome["version"], outcome["validation"]
    best = outcome["evaluation"]["best"]
    best_run = next(r["run_id"] for r in outcome["trials"] if r["trial"] == best)
    tool_info = {
        **info,
        "run_id": outcome["run_id"],
        "best_run_id": best_run,
        "trial_runs": {r.data.tags.get("mlflow.runName"): r.info.run_id for r in found},
        "trial_statuses": sorted({r.info.status for r in found}),
        "trial_span_s": trial_span_s(found),
        "dataset": {k: v for k, v in outcome["data"].items() if k not in ("data_path", "seconds")},
        "parallelism": "a concurrent.futures process pool in the sweep script (MLflow has none)",
        "model_name": version.name,
        "model_version": str(version.version),
        "model_uri": f"models:/{version.name}/{version.version}",
        "logged_model_uri": outcome["logged_model_uri"],
        **outcome["promotion"],
    }
    recorder.add("tracking", tracking_seconds(recorder, outcome, tool_info))
    evaluation = {
        **outcome["evaluation"],
        "metrics": {**outcome["evaluation"]["metrics"], **validation["metrics"]},
        "gate": validation["gate"].to_dict(),
    }
    return sweep_record(
        recorder,
        trials=outcome["trials"],
        evaluation=evaluation,
        data=outcome["data"],
        stored_trials=len(found),
        tool_info=tool_info,
    )


def tracking_seconds(
    recorder: RunRecorder, outcome: dict[str, Any], tool_info: dict[str, Any]
) -> float:
    """The sweep's time outside the data, the trials (their span in the store), the evaluation
    and the timed MLflow phases: the parent run's tracking calls and the pool's start-up."""
    phases = sum(recorder.timer.timings.get(key, 0.0) for key in set(adapter.TIMED_PHASES.values()))
    core = sum(float(outcome[key].get("seconds", 0.0)) for key in ("data", "evaluation"))
    span = tool_info["trial_span_s"] or 0.0
    return max(0.0, tool_info["sweep_seconds"] - core - span - phases)


def trial_span_s(runs: list[Any]) -> float | None:
    """First trial start to last trial end, from the times MLflow recorded (milliseconds)."""
    ends = [r.info.end_time for r in runs if r.info.end_time]
    if not runs or len(ends) != len(runs):
        return None
    return (max(ends) - min(r.info.start_time for r in runs)) / 1000.0


# ------------------------------------------------------------------------------------------
# evidence: the parent run, the best trial's run and the registered version, from the store
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    info = result.tool_info
    uri, run_id = tracking.unredact_uri(info.get("tracking_uri") or ""), info.get("run_id")
    if not uri or not run_id or not info.get("best_run_id"):
        return dict.fromkeys(EVIDENCE_KEYS, False)
    tracking.import_mlflow()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    parent = client.get_run(run_id)
    trials = stored_trials(client, parent.info.experiment_id, run_id)
    return {
        "params": adapter._has_params(parent, result) and _trials_have_params(trials),
        "per_epoch_metrics": adapter._has_history(client, info["best_run_id"], result),
        "final_metrics": adapter._has_final_metrics(parent, result),
        "model_artifact": adapter._has_model(client, info),
        "plots": any(a.path.endswith(".png") for a in client.list_artifacts(run_id, "plots")),
        "lineage": adapter._has_lineage(parent, info),
        "run_state": _run_state(parent, trials, result),
    }


def _trials_have_params(trials: list[Any]) -> bool:
    keys = {"model", "lr", "batch_size"}
    return bool(trials) and all(keys <= set(r.data.params) for r in trials)


def _run_state(parent: Any, trials: list[Any], result: RunResult) -> bool:
    expected = "FAILED" if result.status == "failed" else "FINISHED"
    planned = (result.tool_info.get("sweep") or {}).get("planned")
    return (
        parent.info.status == expected
        and len(trials) == planned
        and all(r.info.status == "FINISHED" for r in trials)
    )
