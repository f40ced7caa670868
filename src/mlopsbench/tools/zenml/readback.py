"""Reading a pipeline run back through ZenML's Client: runs inside the worker process.

Everything the record and the evidence need comes from ZenML's own store through
``zenml.client.Client``: the run and its status, its parameters, each step run (status, start
and end, exception), what each core stage returned (the step outputs ``data_info``,
``model_info``, ``evaluation``: their ``seconds`` time the core), the run's model version and
its stage in the Model Control Plane, and the artifacts (model, dataset, evaluation report).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.usecases.common.usecase import UseCase

# Core stage -> the step output holding what it returned, in both pipelines; and the MLflow
# step's output, which reports its own seconds the same way.
STAGE_OUTPUTS = {
    "prepare_data": "data_info",
    "build_model": "model_info",
    "evaluate_model": "evaluation",
    "log_to_mlflow": "mlflow",
}
GATE_OUTPUT = "quality_gate"
# The sweep's steps: one run per trial (``trial_result``), the fan-in's choice (``best_trial``).
TRIAL_OUTPUT = "trial_result"
BEST_OUTPUT = "best_trial"
MODEL_ARTIFACT = "model"
DATASET_ARTIFACT = "dataset"
REPORT_ARTIFACT = "evaluation_report"
FILE_ARTIFACTS = (MODEL_ARTIFACT, DATASET_ARTIFACT, "evaluation_files", REPORT_ARTIFACT)
PRODUCTION = "production"
PNG = "data:image/png;base64,"


def latest_run(since: float) -> Any:
    """The newest pipeline run of the store if it was created after ``since`` (epoch
    seconds): the run a failed call left. None when the call failed before creating one."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(sort_by="desc:created", size=1).items
    if not runs or (epoch(runs[0].created) or 0.0) < since - 1.0:
        return None
    return runs[0]


def get_run(run_id: str) -> Any:
    from zenml.client import Client

    try:
        return Client().get_pipeline_run(run_id)
    except KeyError:
        raise MlopsbenchError(f"ZenML has no pipeline run {run_id}") from None


def read_run(run: Any) -> dict[str, Any]:
    """The run as plain data (JSON): what the adapter builds the record from."""
    steps = sorted(run.steps.values(), key=lambda s: s.start_time or run.start_time)
    outputs, stage_steps = _stage_outputs(steps)
    return {
        "run_id": str(run.id),
        "run_name": run.name,
        "pipeline": run.pipeline.name if run.pipeline else None,
        "status": str(run.status.value),
        "started": epoch(run.start_time),
        "finished": epoch(run.end_time),
        "params": dict(run.config.parameters or {}),
        "steps": {step.name: _step(step) for step in steps},
        "stage_steps": stage_steps,
        "outputs": outputs,
        "gate": _output(steps, GATE_OUTPUT),
        "artifacts": {name: uri for name in FILE_ARTIFACTS if (uri := _uri(steps, name))},
        "model_version": _model_version(run),
    }


def read_sweep(run: Any) -> dict[str, Any]:
    """The sweep's run as :func:`read_run` gives it, with what ZenML stored for the trials:
    every ``trial_result`` the run's steps produced, in trial order; how many step runs of
    this run hold one (``stored_trials``); the attempts ZenML recorded per step (a retried
    step run is kept beside the one that succeeded); the fan-in's inputs."""
    record = read_run(run)
    trial_steps = [s for s in run.steps.values() if TRIAL_OUTPUT in s.outputs]
    trials = [s.outputs[TRIAL_OUTPUT][0].load() for s in trial_steps]
    record["trials"] = sorted(trials, key=lambda t: int(t["trial"]["index"]))
    record["stored_trials"] = len(trial_steps)
    record["attempts"] = _attempts(run)
    record["fan_in"] = _fan_in(run)
    record["step_config"] = {s.name: _step_config(s) for s in run.steps.values()}
    snapshot = run.snapshot
    record["snapshot"] = {  # what ZenML compiled before the run started
        "dynamic": bool(getattr(snapshot, "is_dynamic", False)),
        "steps": sorted(snapshot.step_configurations) if snapshot else [],
    }
    return record


def _step_config(step: Any) -> dict[str, Any]:
    """The retry policy and resource request ZenML stored with the step run's configuration."""
    config = step.config
    resources = config.settings.get("resources")
    return {
        "retry": config.retry.model_dump() if config.retry else None,
        "resources": _plain(resources) if resources is not None else None,
    }


def _plain(settings: Any) -> dict[str, Any]:
    dumped = settings.model_dump(exclude_none=True) if hasattr(settings, "model_dump") else settings
    return {k: v for k, v in dict(dumped).items() if v not in ({}, [])}


def _attempts(run: Any) -> dict[str, list[str]]:
    """Each step name -> the statuses of its step runs, oldest first (``retried`` ones too)."""
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    found: dict[str, list[str]] = {}
    step_runs = depaginate(Client().list_run_steps, pipeline_run_id=run.id, sort_by="created")
    for step in step_runs:
        found.setdefault(step.name, []).append(str(step.status.value))
    return found


def _fan_in(run: Any) -> dict[str, Any]:
    """The step that consumed every trial's result: its name and the steps that made them."""
    for step in run.steps.values():
        inputs = [a for artifacts in step.inputs.values() for a in artifacts]
        producers = {_producer(run, a.id) for a in inputs if a.artifact.name == TRIAL_OUTPUT}
        if len(producers) > 1:
            return {"step": step.name, "inputs_from": sorted(producers)}
    return {}


def _producer(run: Any, artifact_id: Any) -> str:
    return next(
        (
            s.name
            for s in run.steps.values()
            if any(a.id == artifact_id for a in s.outputs.get(TRIAL_OUTPUT, []))
        ),
        "?",
    )


def epoch(moment: datetime | None) -> float | None:
    """ZenML stores naive UTC datetimes."""
    return moment.replace(tzinfo=UTC).timestamp() if moment else None


def _step(step: Any) -> dict[str, Any]:
    exception = step.exception_info
    return {
        "status": str(step.status.value),
        "started": epoch(step.start_time),
        "finished": epoch(step.end_time),
        "outputs": sorted(step.outputs),
        "error": _error(exception) if exception else None,
    }


def _error(exception: Any) -> str:
    kind = (exception.source or "Exception").rsplit(".", 1)[-1]
    message = " ".join(str(exception.message or "").split()) or "no message"
    return f"{kind}: {message}"


def _stage_outputs(steps: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """What each core stage returned, and which step returned it."""
    outputs, stage_steps = {}, {}
    for stage, name in STAGE_OUTPUTS.items():
        for step in steps:
            if name in step.outputs:
                outputs[stage], stage_steps[stage] = dict(step.outputs[name][0].load()), step.name
                break
    return outputs, stage_steps


def _output(steps: list[Any], name: str) -> Any:
    artifact = _artifact(steps, name)
    return artifact.load() if artifact is not None else None


def _artifact(steps: list[Any], name: str) -> Any:
    return next((s.outputs[name][0] for s in steps if name in s.outputs), None)


def _uri(steps: list[Any], name: str) -> str | None:
    artifact = _artifact(steps, name)
    return str(artifact.uri) if artifact is not None else None


def _model_version(run: Any) -> dict[str, Any] | None:
    version = run.model_version
    if version is None:
        return None
    return {
        "id": str(version.id),
        "model": version.model.name,
        "number": version.number,
        "name": version.name,
        "stage": version.stage,
    }


# ---------------------------------------------------------------------------------------------
# evidence: what ZenML itself recorded
# ---------------------------------------------------------------------------------------------


def recorded_evidence(
    run: Any, usecase: UseCase, params: Mapping[str, Any], status: str
) -> dict[str, bool]:
    """The evidence checklist, each item judged from what ZenML stored for the run."""
    steps = list(run.steps.values())
    # A run's model step returns its history; in the sweep the best trial holds it.
    model_info = _loaded(steps, STAGE_OUTPUTS["build_model"]) or _loaded(steps, BEST_OUTPUT)
    evaluation = _loaded(steps, STAGE_OUTPUTS["evaluate_model"])
    return {
        "params": _params_recorded(run, usecase, params),
        "per_epoch_metrics": _history_recorded(model_info),
        "final_metrics": _metrics_recorded(run, evaluation),
        "model_artifact": _model_recorded(run),
        "plots": _plots_recorded(steps),
        "lineage": _lineage_recorded(steps),
        "run_state": _state_recorded(run, status),
    }


def _loaded(steps: list[Any], name: str) -> dict[str, Any]:
    artifact = _artifact(steps, name)
    return dict(artifact.load()) if artifact is not None else {}


def _params_recorded(run: Any, usecase: UseCase, params: Mapping[str, Any]) -> bool:
    """The run's parameters (as ZenML stored them) define the config the record names."""
    names = {spec.name for spec in usecase.params()}
    stored = {k: v for k, v in (run.config.parameters or {}).items() if k in names}
    try:
        return bool(stored) and usecase.config(stored).to_dict() == dict(params)
    except MlopsbenchError:  # values the config rejects: the record does not match them
        return False


def _history_recorded(model_info: Mapping[str, Any]) -> bool:
    history = model_info.get("history") or []
    return bool(history) and all("epoch" in row for row in history)


def _metrics_recorded(run: Any, evaluation: Mapping[str, Any]) -> bool:
    """Accuracy in the evaluation output and in the model version's metadata (the MCP)."""
    version = run.model_version
    logged = (version.run_metadata or {}).get("metrics", {}) if version is not None else {}
    return "accuracy" in evaluation.get("metrics", {}) and "accuracy" in logged


def _model_recorded(run: Any) -> bool:
    """The run's model version holds a model artifact this run produced, with content."""
    version = run.model_version
    if version is None:
        return False
    artifact = version.get_model_artifact(MODEL_ARTIFACT)
    if artifact is None or artifact.producer_pipeline_run_id != run.id:
        return False
    return int((artifact.run_metadata or {}).get("storage_size", 0)) > 0


def _plots_recorded(steps: list[Any]) -> bool:
    """The evaluation report (an HTML artifact the dashboard renders) embeds the plots."""
    report = _output(steps, REPORT_ARTIFACT)
    return report is not None and str(report).count(PNG) >= 2


def _lineage_recorded(steps: list[Any]) -> bool:
    """The dataset artifact carries its source and digest, and ZenML links it as an input of
    the steps that used it."""
    dataset = _artifact(steps, DATASET_ARTIFACT)
    if dataset is None:
        return False
    metadata = dataset.run_metadata or {}
    consumers = [
        step for step in steps if any(a.id == dataset.id for a in step.inputs.get("dataset", []))
    ]
    return bool(metadata.get("source") and metadata.get("digest") and consumers)


def _state_recorded(run: Any, status: str) -> bool:
    """The run's status as recorded, and its model version promoted exactly when it passed."""
    if status == "failed":
        return str(run.status.value) == "failed"
    stage = run.model_version.stage if run.model_version is not None else None
    return str(run.status.value) == "completed" and (stage == PRODUCTION) == (status == "ok")
