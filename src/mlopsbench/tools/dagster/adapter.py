"""Dagster's adapter: materialise a use case's job in-process, read it back from the instance.

``run(request)`` creates the run folder's own ``DAGSTER_HOME`` (``<run dir>/dagster_home``,
telemetry off), executes ``<use case>_pipeline`` from ``pipeline/definitions.py`` with
``execute_in_process`` against that persistent instance, reads the run back through the
instance's API (run record, step statistics, event log: materialisations and their metadata,
asset check evaluations, step failures) and builds the common record. ``evidence(result)``
re-opens the instance and reports what Dagster itself stored. ``DAGSTER_HOME=<run
dir>/dagster_home dagster dev -m mlopsbench.tools.dagster.pipeline.definitions`` shows the run.

Timings: the core stages' own ``seconds``, read from their assets' materialisation metadata
(``data``, ``train``/``model``, ``evaluate``); ``tracking``, the ``<use case>_mlflow_run`` step's
duration when it ran; ``dagster_overhead``, the execution minus that work
(``tool_info["overhead"]`` splits it by step statistics); ``import`` (Dagster and the code
location), ``instance`` (home and instance set-up) and ``readback``.

A model below its quality gate fails the blocking asset check: the run ends FAILURE in Dagster,
nothing downstream materialises (no champion, no MLflow run) and the record says
``gate_failed``.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.dagster import instance as dagster_instance
from mlopsbench.tools.dagster import launch
from mlopsbench.tools.dagster.readback import (
    CHAMPION,
    TRACKING,
    RunBack,
    asset_name,
    overhead_breakdown,
    read_run,
    recorded_evidence,
    step_timings,
)
from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.registry import get_usecase

UI_MODULE = launch.DEFINITIONS_MODULE


def run(request: RunRequest) -> RunResult:
    """Materialise the use case's job once and return the common result record."""
    recorder = RunRecorder("dagster", request, distributions=get_tool("dagster").distributions)
    usecase = recorder.usecase
    preflight(request, usecase)
    with recorder.stage("import"):
        job = launch.resolve_job(launch.load_definitions(), usecase.name)
    with recorder.stage("instance"):
        home = dagster_instance.prepare_home(Path(request.out_dir) / dagster_instance.HOME_DIR)
    config = launch.run_config(
        usecase.name, request.config, request.tracking_uri, request.show_progress
    )
    with dagster_instance.open_instance(home) as instance:
        done = launch.materialise(job, instance, config, tags={"mlopsbench/tool": "dagster"})
        with recorder.stage("readback"):
            back = read_run(instance, done.run_id)
    return _record(recorder, home, back, done)


def evidence(result: RunResult) -> dict[str, bool]:
    """What Dagster really recorded for this run, read back from its instance."""
    home, run_id = result.tool_info.get("dagster_home"), result.tool_info.get("run_id")
    if not home or not run_id or not (Path(home) / dagster_instance.INSTANCE_YAML).is_file():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    try:
        with dagster_instance.open_instance(Path(home)) as instance:
            back = read_run(instance, str(run_id))
    except MlopsbenchError:  # the run is not in that instance: nothing was recorded
        return dict.fromkeys(EVIDENCE_KEYS, False)
    record = {"params": result.params, "status": result.status}
    return recorded_evidence(back, get_usecase(result.usecase), record, Path(home))


def preflight(request: RunRequest, usecase: UseCase) -> None:
    """Bad local inputs and an unreachable tracking server fail here, before the run folder
    or the instance exists (MLflow is reached only after training otherwise)."""
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------


def _record(
    recorder: RunRecorder, home: Path, back: RunBack, done: launch.Materialised
) -> RunResult:
    name = recorder.usecase.name
    data, model, evaluation = back.stage_outputs(name).values()
    common: dict[str, Any] = {
        "artifacts": _artifacts(home, data, model, evaluation),
        "tool_info": _tool_info(recorder.usecase, home, back, done),
        "history": model.get("history") or [],
        "timings": _timings(recorder.usecase, back, done),
    }
    if not (back.successful or back.failed_only_at_the_gate(name)):
        return recorder.failed(back.failure_message(), metrics=evaluation.get("metrics"), **common)
    return recorder.finish(
        metrics=evaluation.get("metrics") or {},
        gate=evaluation.get("gate"),
        model=model.get("model_name"),
        **common,
    )


def _timings(usecase: UseCase, back: RunBack, done: launch.Materialised) -> dict[str, float]:
    """Core seconds from the materialisation metadata; the rest of the execution is Dagster's
    (MLflow logging counted apart, as its step's duration)."""
    timings = core_timings(usecase, back.stage_outputs(usecase.name))
    tracking = back.steps.get(asset_name(usecase.name, TRACKING))
    if back.asset(usecase.name, TRACKING) and tracking is not None and tracking.seconds:
        timings["tracking"] = tracking.seconds
    timings["dagster_overhead"] = max(done.seconds - sum(timings.values()), 0.0)
    return timings


def _artifacts(
    home: Path, data: dict[str, Any], model: dict[str, Any], evaluation: dict[str, Any]
) -> dict[str, str]:
    """The files the stages wrote (their paths, from the metadata) and the instance's home."""
    found = {
        "data": data.get("data_path"),
        "model": model.get("model_dir"),
        "history": model.get("history_path"),
        **(evaluation.get("artifacts") or {}),
        "dagster_home": str(home),
    }
    return {key: str(path) for key, path in found.items() if path}


def _tool_info(
    usecase: UseCase, home: Path, back: RunBack, done: launch.Materialised
) -> dict[str, Any]:
    name = usecase.name
    data, model, evaluation = back.stage_outputs(name).values()
    info: dict[str, Any] = {
        "run_id": back.run_id,
        "job": back.job_name,
        "dagster_status": back.status,
        "dagster_home": str(home),
        "dagster_version": version("dagster"),
        "ui_command": f"DAGSTER_HOME={home} dagster dev -m {UI_MODULE} -h 127.0.0.1",
        "materialised": sorted(back.materialised),
        "checks": back.checks,
        "champion": back.asset(name, CHAMPION) or None,
        "data_version": back.tags.get(asset_name(name, "data"), {}).get("dagster/data_version"),
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds", "path")},
        "steps": step_timings(back, name),
        "overhead": overhead_breakdown(back, name, done.started, done.returned),
        "mlflow": {
            k: v
            for k, v in back.asset(name, TRACKING).items()
            if k in ("run_id", "experiment_id", "model_uri")
        },
        **{k: model[k] for k in ("precision", "device") if k in model},  # digits
    }
    if evaluation.get("inference"):  # sentiment: the precision actually used, throughput
        info["inference"] = evaluation["inference"]
    return info
