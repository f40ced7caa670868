"""The MLflow adapter: run the MLflow pipeline in this process against a checked store and turn
what MLflow recorded into the common result record.

``pipeline/run_pipeline.py`` is what an MLflow user writes; this module is the harness around it:

- the store's URI is resolved and checked before anything is written (a dead server or a typo
  is one line, before the ~3 s import), and the experiment is opened with its artifacts next to
  the store (``<runs>/mlflow/artifacts``, not ``./mlruns``);
- the run is tagged with the harness's tags (tool, versions, git commit, run folder);
- a run that fails ends FAILED (KILLED on Ctrl-C) with the reason as a tag, never RUNNING; user
  errors propagate as one-line MlopsbenchErrors, anything else becomes a ``failed`` record;
- timings: the core's stages report their own seconds (``data``, ``train``/``model``,
  ``evaluate``); MLflow's own costs are timed from outside by wrapping the pipeline's model
  functions for the run (``model_logging``, ``registry``, ``validate``: loading the registered
  version back and gating it; scoring it is the core's ``evaluate``); ``tracking`` is the rest
  of the run (experiment, run start and end, params, metrics, dataset, artifacts) plus opening
  the store; ``import`` is importing MLflow and the pipeline;
- :func:`evidence` reads the run back through ``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mlopsbench import tracking
from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import one_line
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool

TOOL = "mlflow"
PIPELINE_MODULE = "mlopsbench.tools.mlflow.pipeline.run_pipeline"
# The pipeline's functions that are MLflow's own work -> the timing key each one adds to.
TIMED_PHASES = {
    "log_model": "model_logging",
    "register_version": "registry",
    "load_version": "validate",  # loading the registered version back (it is then scored once)
    "validate": "validate",
    "promote_if_passed": "registry",
}
RUN_DIR_TAG = "mlopsbench.run_dir"
ERROR_TAG = "mlopsbench.error"

__all__ = ["EVIDENCE_KEYS", "evidence", "run", "store_root"]


def store_root(request: RunRequest) -> Path:
    """Default store: ``<out_dir parent>/mlflow`` (``runs/mlflow/`` for the CLI's run folders)."""
    return Path(request.out_dir).resolve().parent / "mlflow"


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder(TOOL, request, distributions=get_tool(TOOL).distributions)
    recorder.usecase.check_inputs(request.config)
    root = store_root(request)
    uri = tracking.resolve_tracking_uri(request.tracking_uri, root)
    tracking.check_tracking_uri(uri)  # fail fast, before the 3 s import and any run exists
    with recorder.stage("import"):
        tracking.import_mlflow()  # telemetry off before MLflow's first import
        pipeline = importlib.import_module(PIPELINE_MODULE)
    with recorder.stage("tracking"):
        client, experiment_id = tracking.open_experiment(uri, recorder.usecase.name, root)
    started = time.perf_counter()
    try:
        with timed_phases(recorder, pipeline), tracking.environment_kept():
            outputs = pipeline.run_pipeline(
                recorder.usecase.name,
                request.config,
                request.out_dir,
                uri,
                run_name=Path(request.out_dir).name,
                tags=tracking.standard_tags(TOOL, recorder.usecase.name, run_tags(request)),
                show_progress=request.show_progress,
            )
    except BaseException as exc:
        run_id = end_failed_run(client, request, exc)
        if isinstance(exc, MlopsbenchError | KeyboardInterrupt | SystemExit):
            raise
        info = {**store_info(uri, experiment_id, recorder), "run_id": run_id}
        return recorder.failed(
            f"MLflow run {run_id} failed: {one_line(exc, 1000)}",
            tool_info={**info, "run_status": "FAILED"},
        )
    timings = core_timings(recorder.usecase, outputs["stages"])
    recorder.add("tracking", tracking_seconds(recorder, time.perf_counter() - started, timings))
    return record(recorder, outputs, timings, store_info(uri, experiment_id, recorder))


def run_tags(request: RunRequest) -> dict[str, str]:
    """Ties the MLflow run to its run folder (and lets a failure find its run)."""
    return {RUN_DIR_TAG: str(request.out_dir)}


def store_info(uri: str, experiment_id: str, recorder: RunRecorder) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "experiment_name": tracking.experiment_name(recorder.usecase.name),
        "tracking_uri": tracking.redact_uri(uri),  # no database password in records
    }


def record(
    recorder: RunRecorder,
    outputs: dict[str, Any],
    timings: dict[str, float],
    info: dict[str, Any],
) -> RunResult:
    """The result record of a pipeline run that reached its end (gate passed or not)."""
    data, model, evaluation = (
        outputs["stages"][k] for k in ("prepare_data", "build_model", "evaluate_model")
    )
    version, validation = outputs["version"], outputs["validation"]
    tool_info = {
        **info,
        "run_id": outputs["run_id"],
        "model_name": version.name,
        "model_version": str(version.version),
        "model_uri": f"models:/{version.name}/{version.version}",
        "logged_model_uri": outputs["logged_model_uri"],
        "logged_artifacts": tracking.artifact_paths(evaluation["artifacts"]),
        "core_gate": evaluation["gate"],
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds")},
        **{k: model[k] for k in ("precision", "device") if k in model},
        **outputs["promotion"],
    }
    return recorder.finish(
        metrics={**evaluation["metrics"], **validation["metrics"]},
        gate=validation["gate"].to_dict(),
        artifacts={
            "model": model["model_dir"],
            "data": data["data_path"],
            **evaluation["artifacts"],
        },
        tool_info=tool_info,
        history=model.get("history", []),
        timings=timings,
        model=model.get("model_name"),
    )


# ------------------------------------------------------------------------------------------
# timing MLflow's own work from outside the pipeline
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def timed_phases(recorder: RunRecorder, pipeline: ModuleType) -> Iterator[None]:
    """Time the pipeline's MLflow phases (:data:`TIMED_PHASES`) by wrapping its functions for
    the block: the pipeline calls them by their module-level names, and has no timing code."""
    originals = {name: getattr(pipeline, name) for name in TIMED_PHASES}
    for name, function in originals.items():
        setattr(pipeline, name, _timed(recorder, TIMED_PHASES[name], function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(pipeline, name, function)


def _timed(recorder: RunRecorder, key: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with recorder.stage(key):
            return function(*args, **kwargs)

    return timed


def tracking_seconds(
    recorder: RunRecorder, pipeline_seconds: float, core: dict[str, float]
) -> float:
    """The run's time that was neither the core's stages nor a timed MLflow phase: MLflow's
    tracking calls (experiment, run start and end, params, metrics, dataset, artifacts)."""
    phases = sum(recorder.timer.timings.get(key, 0.0) for key in set(TIMED_PHASES.values()))
    return max(0.0, pipeline_seconds - sum(core.values()) - phases)


# ------------------------------------------------------------------------------------------
# a run that failed: never left RUNNING
# ------------------------------------------------------------------------------------------


def end_failed_run(client: Any, request: RunRequest, exc: BaseException) -> str | None:
    """End this request's run FAILED (KILLED on Ctrl-C) with the reason as a tag; its id.

    MLflow's ``with start_run()`` has already ended it FAILED on the way out. Ctrl-C is corrected
    to KILLED, and a run the store could not end (the store may be what failed) is ended here.
    Nothing here raises: the original error is what the user must see.
    """
    mlflow = tracking.import_mlflow()
    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    with contextlib.suppress(Exception):
        mlflow.end_run(status)  # only if still active
    found = _this_requests_run(mlflow, request)
    if found is None:
        return None
    run_id = found.info.run_id
    with contextlib.suppress(Exception):
        client.set_tag(run_id, ERROR_TAG, one_line(exc, 5000))
    if found.info.status != status:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, status=status)
    return str(run_id)


def _this_requests_run(mlflow: Any, request: RunRequest) -> Any:
    """The last run MLflow started in this process, if it is this request's (by its tag)."""
    try:
        last = mlflow.last_active_run()
    except Exception:  # the store is unreachable: nothing more can be recorded there
        return None
    if last is None or last.data.tags.get(RUN_DIR_TAG) != str(request.out_dir):
        return None
    return last


# ------------------------------------------------------------------------------------------
# evidence: what MLflow really stored, read back from its own store
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Read the run, its metric histories, artifacts, inputs and model version back."""
    info = result.tool_info
    uri, run_id = tracking.unredact_uri(info.get("tracking_uri") or ""), info.get("run_id")
    if not uri or not run_id:
        return dict.fromkeys(EVIDENCE_KEYS, False)
    tracking.import_mlflow()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_record = client.get_run(run_id)
    return {
        "params": _has_params(run_record, result),
        "per_epoch_metrics": _has_history(client, run_id, result),
        "final_metrics": _has_final_metrics(run_record, result),
        "model_artifact": _has_model(client, info),
        "plots": any(a.path.endswith(".png") for a in client.list_artifacts(run_id, "plots")),
        "lineage": _has_lineage(run_record, info),
        "run_state": run_record.info.status
        == ("FAILED" if result.status == "failed" else "FINISHED"),
    }


def _has_params(run_record: Any, result: RunResult) -> bool:
    logged = run_record.data.params
    return bool(result.params) and all(
        logged.get(k) == tracking.param_value(v) for k, v in result.params.items()
    )


def _has_history(client: Any, run_id: str, result: RunResult) -> bool:
    if not result.history:
        return False
    keys = [k for k in result.history[0] if k != "epoch"]
    return all(len(client.get_metric_history(run_id, k)) == len(result.history) for k in keys)


def _has_final_metrics(run_record: Any, result: RunResult) -> bool:
    logged = run_record.data.metrics
    return "accuracy" in result.metrics and all(
        abs(logged.get(k, float("nan")) - v) < 1e-9
        for k, v in result.metrics.items()
        if isinstance(v, int | float)
    )


def _has_model(client: Any, info: dict[str, Any]) -> bool:
    name, version = info.get("model_name"), info.get("model_version")
    if not name or not version:
        return False
    mv = client.get_model_version(name, version)
    model_id = tracking.logged_model_id(mv)
    if mv.status != "READY" or not model_id:
        return False
    return any(a.path == "MLmodel" for a in client.list_logged_model_artifacts(model_id))


def _has_lineage(run_record: Any, info: dict[str, Any]) -> bool:
    digest = info.get("dataset", {}).get("digest")
    inputs = run_record.inputs.dataset_inputs if run_record.inputs else []
    has_dataset = any(d.dataset.digest == digest for d in inputs) if digest else bool(inputs)
    return has_dataset or "mlflow.source.git.commit" in run_record.data.tags
