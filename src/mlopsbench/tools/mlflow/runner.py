"""The MLflow pipeline: one tracked run, a registered version, validation from the registry.

Flow (digits; sentiment is the same with ``model`` instead of ``train``)::

    start run (experiment mlopsbench-<usecase>; params + tags in one batch)
    data      -> dataset input (origin, digest, sizes)
    train     -> per-epoch history in one log_batch
    evaluate  -> final + per-class metrics in one log_batch; PNG/JSON artifacts
    log_model -> pyfunc over the core's safetensors folder (signature, example, pinned reqs)
    register  -> new version of digits-<model>, polled until READY
    validate  -> load models:/<name>/<version>, score the test split, log validation_* metrics
    promote   -> alias ``champion`` only if the gate passed; else version tagged rejected

Any exception ends the MLflow run as FAILED (KILLED on Ctrl-C) so no run is left RUNNING, and
no alias moves. User errors propagate as one-line MlopsbenchErrors; anything else becomes a
``failed`` record carrying the run id.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench import tracking
from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import (
    EVIDENCE_KEYS,
    RunRequest,
    RunResult,
    StageTimer,
    environment_info,
    now_iso,
    peak_rss_mb,
)
from mlopsbench.tools.mlflow import core
from mlopsbench.tools.mlflow import registry as model_registry

TOOL = "mlflow"


@dataclass
class _Session:
    """One MLflow run in progress: what every step needs, passed explicitly."""

    request: RunRequest
    timer: StageTimer
    client: Any
    uri: str
    run_id: str
    experiment_id: str

    @property
    def usecase(self) -> str:
        return self.request.usecase

    @property
    def cfg(self) -> Any:
        return self.request.config

    @property
    def out(self) -> Path:
        return Path(self.request.out_dir)


def store_root(request: RunRequest) -> Path:
    """Default store: ``<out_dir parent>/mlflow`` (``runs/mlflow/`` for the CLI's run folders)."""
    return Path(request.out_dir).resolve().parent / "mlflow"


def run(request: RunRequest) -> RunResult:
    core.check_usecase(request.usecase)
    timer = StageTimer()
    started = now_iso()
    root = store_root(request)
    uri = tracking.resolve_tracking_uri(request.tracking_uri, root)
    tracking.check_tracking_uri(uri)  # fail fast, before the 3 s import and any run exists
    with timer.stage("import"):
        tracking.import_mlflow()
        import mlflow.pyfunc  # the pyfunc flavor is part of the tool's fixed cost
    with timer.stage("tracking"):
        client, experiment_id = tracking.open_experiment(uri, request.usecase, root)
        active = mlflow.start_run(experiment_id=experiment_id, run_name=Path(request.out_dir).name)
        session = _Session(request, timer, client, uri, active.info.run_id, experiment_id)
    try:
        result = _pipeline(session, started)
    except BaseException as exc:
        _end_failed(mlflow, session, exc)
        if isinstance(exc, MlopsbenchError | KeyboardInterrupt | SystemExit):
            raise
        return _failed_result(session, started, exc)
    with timer.stage("tracking"):
        mlflow.end_run("FINISHED")
    result.timings = dict(timer.timings)
    result.wall_time_s = timer.elapsed
    result.peak_rss_mb = peak_rss_mb()
    return result


def _pipeline(s: _Session, started: str) -> RunResult:
    timer, client, run_id = s.timer, s.client, s.run_id
    with timer.stage("tracking"):
        tracking.log_batch(
            client,
            run_id,
            params=s.cfg.to_dict(),
            tags=tracking.standard_tags(TOOL, s.usecase, {"mlopsbench.run_dir": str(s.out)}),
        )
    with timer.stage("data"):
        data = core.prepare_data(s.usecase, s.cfg, s.out)
    with timer.stage("tracking"):
        tracking.log_dataset(client, run_id, s.usecase, data, tracking.data_context(s.usecase))
    with timer.stage(core.model_stage(s.usecase)):
        built = core.build_model(
            s.usecase, s.cfg, data["data_path"], s.out, s.request.show_progress
        )
    with timer.stage("tracking"):
        tracking.log_batch(client, run_id, history=built.get("history", []))
        if built.get("train_data"):  # sentiment: the sample the model was trained on
            tracking.log_dataset(client, run_id, s.usecase, built["train_data"], "training")
    with timer.stage("evaluate"):
        evaluated = core.evaluate(s.usecase, s.cfg, data["data_path"], built["model_dir"], s.out)
    with timer.stage("tracking"):
        tracking.log_batch(client, run_id, metrics=evaluated["metrics"])
        logged_files = tracking.log_artifact_files(client, run_id, evaluated["artifacts"])
    with timer.stage("model_logging"):
        model_info = tracking.log_core_model(
            s.usecase,
            built["model_dir"],
            data_path=data["data_path"],
            settings=core.model_settings(s.usecase, s.cfg),
        )
    name = core.registered_name(s.usecase, s.cfg)
    with timer.stage("registry"):
        version = tracking.register_model_version(
            client, model_info.model_uri, name, run_id, tags={"mlopsbench.run_id": run_id}
        )
    with timer.stage("validate"):
        val_metrics, gate = model_registry.validate_version(
            client,
            s.usecase,
            name,
            str(version.version),
            data["data_path"],
            s.cfg.threshold,
            run_id,
        )
    with timer.stage("registry"):
        promotion = model_registry.promote_if_passed(client, name, str(version.version), gate)
        client.set_tag(run_id, model_registry.STATUS_TAG, promotion.validation_status)
    return RunResult(
        tool=TOOL,
        usecase=s.usecase,
        model=built.get("model_name", core.model_label(s.usecase, s.cfg)),
        params=s.cfg.to_dict(),
        metrics={**evaluated["metrics"], **val_metrics},
        artifacts={
            "model": built["model_dir"],
            "data": data["data_path"],
            **evaluated["artifacts"],
        },
        status="ok" if gate.passed else "gate_failed",
        error=None if gate.passed else gate.message,
        gate=gate.to_dict(),
        tool_info={
            **_run_info(s),
            "model_name": name,
            "model_version": str(version.version),
            "model_uri": f"models:/{name}/{version.version}",
            "logged_model_uri": model_info.model_uri,
            "logged_artifacts": logged_files,
            "core_gate": evaluated["gate"],
            "dataset": {k: v for k, v in data.items() if k != "data_path"},
            **promotion.to_dict(),
        },
        history=list(built.get("history", [])),
        started_at=started,
        environment=environment_info(),
    )


def _run_info(s: _Session) -> dict[str, Any]:
    return {
        "run_id": s.run_id,
        "experiment_id": s.experiment_id,
        "experiment_name": tracking.experiment_name(s.usecase),
        "tracking_uri": tracking.redact_uri(s.uri),  # no database password in records
    }


def _end_failed(mlflow: Any, s: _Session, exc: BaseException) -> None:
    """Mark the run FAILED (KILLED on Ctrl-C) with the reason as a tag; never raise from here."""
    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    # The store itself may be what failed: ending the run matters more than the tag.
    with contextlib.suppress(Exception):
        s.client.set_tag(s.run_id, "mlopsbench.error", _one_line(exc)[:5000])
    try:
        mlflow.end_run(status)
    except Exception:
        s.client.set_terminated(s.run_id, status=status)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {tracking.first_line(exc, 1000)}" if text else type(exc).__name__


def _failed_result(s: _Session, started: str, exc: BaseException) -> RunResult:
    return RunResult(
        tool=TOOL,
        usecase=s.usecase,
        model=core.model_label(s.usecase, s.cfg),
        params=s.cfg.to_dict(),
        timings=dict(s.timer.timings),
        wall_time_s=s.timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status="failed",
        error=f"MLflow run {s.run_id} failed: {_one_line(exc)}",
        tool_info={**_run_info(s), "run_status": "FAILED"},
        started_at=started,
        environment=environment_info(),
    )


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
