"""A flow run as Prefect recorded it, read through Prefect's own client, as plain JSON.

:func:`read_flow_run` runs in a Prefect process (the worker): it asks the API —
``prefect.client.orchestration.get_client`` — for the flow run (state, parameters, times),
its task runs (state, tries, upstream task runs) with each task's persisted result loaded
through ``State.result()``, and its artifacts. A mapped task (the sweep's ``run_trial``) has
one task run per item: all of them are under ``mapped``. :class:`FlowRunRecord` is that JSON
on the adapter's side, where Prefect is not imported.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SETTLE_S = 15.0
COMPLETED = "COMPLETED"
FAILED_STATES = ("FAILED", "CRASHED", "CANCELLED")  # state types (TimedOut is a FAILED one)


# ---------------------------------------------------------------------------------------------
# in the Prefect process
# ---------------------------------------------------------------------------------------------


def read_flow_run(client: Any, flow_run_id: str) -> dict[str, Any]:
    """Everything Prefect stored about one flow run (``client``: a sync ``get_client()``)."""
    flow_run = client.read_flow_run(flow_run_id)
    task_runs = _settled_task_runs(client, flow_run.id)
    names = {str(run.id): task_name(run) for run in task_runs}
    records = [(names[str(run.id)], _task_run(run, names)) for run in task_runs]
    counts = Counter(name for name, _ in records)
    return {
        "flow_run": {
            "id": str(flow_run.id),
            "name": flow_run.name,
            "flow_name": client.read_flow(flow_run.flow_id).name,
            "parameters": _jsonable(flow_run.parameters),
            **_state(flow_run.state),
            **_times(flow_run),
        },
        "task_runs": dict(records),  # a mapped task: its last run here, all in "mapped"
        "mapped": {
            name: [record for task, record in records if task == name]
            for name, count in counts.items()
            if count > 1
        },
        "artifacts": [_artifact(a, names) for a in _artifacts(client, flow_run.id)],
    }


def task_name(task_run: Any) -> str:
    """The task's function name: task keys are ``<function name>-<hash of its source>``."""
    return str(task_run.task_key).rsplit("-", 1)[0]


def _settled_task_runs(client: Any, flow_run_id: Any, wait_s: float = SETTLE_S) -> list[Any]:
    """The flow run's task runs once each is in a final state.

    Task runs report their states as events, which the API records a moment after the flow
    run has ended; a task still shown running is read again, for at most ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    while True:
        task_runs = _task_runs(client, flow_run_id)
        settled = all(run.state is not None and run.state.is_final() for run in task_runs)
        if settled or time.monotonic() >= deadline:
            return task_runs
        time.sleep(0.2)


def _task_runs(client: Any, flow_run_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    return list(
        client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    )


def _artifacts(client: Any, flow_run_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return list(
        client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    )


def _task_run(run: Any, names: Mapping[str, str]) -> dict[str, Any]:
    upstream = {
        names.get(str(item.id), str(item.id))
        for inputs in run.task_inputs.values()
        for item in inputs
        if getattr(item, "input_type", "") == "task_run"
    }
    return {
        "id": str(run.id),
        "name": run.name,
        "run_count": run.run_count,
        "upstream": sorted(upstream),
        "result": _result(run.state),
        **_state(run.state),
        **_times(run),
    }


def _result(state: Any) -> Any:
    """The task's persisted result, loaded from result storage (None unless it completed)."""
    if state is None or state.type.value != COMPLETED:
        return None
    return _jsonable(state.result(raise_on_failure=False))


def _state(state: Any) -> dict[str, Any]:
    if state is None:
        return {"state_type": None, "state_name": None, "message": None}
    return {"state_type": state.type.value, "state_name": state.name, "message": state.message}


def _times(run: Any) -> dict[str, Any]:
    return {
        "start_time": _epoch(run.start_time),
        "end_time": _epoch(run.end_time),
        "total_run_time_s": run.total_run_time.total_seconds(),
    }


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _artifact(artifact: Any, names: Mapping[str, str]) -> dict[str, Any]:
    task_run_id = str(artifact.task_run_id) if artifact.task_run_id else None
    return {
        "key": artifact.key,
        "type": artifact.type,
        "task": names.get(task_run_id or "", task_run_id),
        "description": artifact.description,
        **_artifact_data(artifact.type, artifact.data),
    }


def _artifact_data(kind: str | None, data: Any) -> dict[str, Any]:
    """What an artifact holds; an image's data URL is summarised (its bytes are checked)."""
    if kind == "image":
        image = _data_url_bytes(str(data))
        return {"bytes": len(image), "png": image.startswith(PNG_MAGIC)}
    if kind == "table" and isinstance(data, str):
        return {"data": json.loads(data)}
    return {"data": _jsonable(data)}


def _data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        return b""
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        return b""


def _jsonable(value: Any) -> Any:
    """Through JSON, so the worker's result file can always be written (str() the rest)."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------------
# in the adapter
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRunRecord:
    id: str
    name: str
    state_type: str | None
    message: str | None
    run_count: int
    state_name: str | None
    upstream: tuple[str, ...]
    result: Any
    start_time: float | None
    end_time: float | None
    total_run_time_s: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRunRecord:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            state_type=data.get("state_type"),
            message=data.get("message"),
            run_count=int(data.get("run_count") or 0),
            state_name=data.get("state_name"),
            upstream=tuple(data.get("upstream") or ()),
            result=data.get("result"),
            start_time=data.get("start_time"),
            end_time=data.get("end_time"),
            total_run_time_s=float(data.get("total_run_time_s") or 0.0),
        )

    @property
    def completed(self) -> bool:
        return self.state_type == COMPLETED


@dataclass(frozen=True)
class FlowRunRecord:
    """One flow run as read back: its state, parameters, task runs and artifacts."""

    id: str
    name: str
    flow_name: str
    state_type: str | None
    state_name: str | None
    message: str | None
    parameters: dict[str, Any]
    start_time: float | None
    end_time: float | None
    total_run_time_s: float
    tasks: dict[str, TaskRunRecord] = field(default_factory=dict)
    artifacts: tuple[dict[str, Any], ...] = ()
    mapped: dict[str, tuple[TaskRunRecord, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowRunRecord:
        run = data["flow_run"]
        return cls(
            id=str(run["id"]),
            name=str(run["name"]),
            flow_name=str(run["flow_name"]),
            state_type=run.get("state_type"),
            state_name=run.get("state_name"),
            message=run.get("message"),
            parameters=dict(run.get("parameters") or {}),
            start_time=run.get("start_time"),
            end_time=run.get("end_time"),
            total_run_time_s=float(run.get("total_run_time_s") or 0.0),
            tasks={k: TaskRunRecord.from_dict(v) for k, v in data.get("task_runs", {}).items()},
            artifacts=tuple(data.get("artifacts") or ()),
            mapped={
                name: tuple(TaskRunRecord.from_dict(run) for run in runs)
                for name, runs in (data.get("mapped") or {}).items()
            },
        )

    @property
    def completed(self) -> bool:
        return self.state_type == COMPLETED

    def result_of(self, task: str) -> dict[str, Any]:
        """What a task returned (its persisted result), or ``{}``."""
        run = self.tasks.get(task)
        return dict(run.result) if run is not None and isinstance(run.result, dict) else {}

    def runs_of(self, task: str) -> tuple[TaskRunRecord, ...]:
        """Every task run of ``task`` (expected start order; a mapped task has one per item)."""
        if task in self.mapped:
            return self.mapped[task]
        return (self.tasks[task],) if task in self.tasks else ()

    def upstream_of(self, task: str) -> tuple[str, ...]:
        """The tasks whose results ``task`` took as input (Prefect's ``task_inputs``)."""
        run = self.tasks.get(task)
        return run.upstream if run is not None else ()

    def failed_tasks(self) -> list[str]:
        return [name for name, run in self.tasks.items() if run.state_type in FAILED_STATES]

    def artifacts_of(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.artifacts if a.get("type") == kind]
