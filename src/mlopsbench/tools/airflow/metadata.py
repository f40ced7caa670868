"""Read a DAG run back through Airflow's own models: run, task instances, ``return_value`` XComs.

:func:`query_run` runs where Airflow is imported (the worker, right after ``dag.test()``) and
returns plain JSON; :func:`read_run` is the harness's side: it starts the worker's ``readback``
command in the run's isolated home, since importing Airflow here would read (and create) its
configuration in the harness process. The alerts log the DAG callbacks append to is read here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import DataError, MlopsbenchError
from mlopsbench.tools.airflow.common import airflow_env, run_worker
from mlopsbench.tools.airflow.pipeline.dag_support import safe_name

READBACK_TIMEOUT_S = 120.0


@dataclass
class TaskRecord:
    task_id: str
    state: str | None
    try_number: int
    max_tries: int
    start: float | None  # epoch seconds
    end: float | None
    duration: float | None


@dataclass
class DagRunRecord:
    dag_id: str
    run_id: str
    state: str | None
    conf: dict[str, Any]
    start: float | None
    end: float | None
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    xcom: dict[str, Any] = field(default_factory=dict)  # task_id -> return_value

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DagRunRecord:
        tasks = {task_id: TaskRecord(**task) for task_id, task in values["tasks"].items()}
        return cls(**{**values, "tasks": tasks})

    def task_states(self) -> dict[str, str | None]:
        return {task_id: task.state for task_id, task in self.tasks.items()}

    def failed_tasks(self) -> list[str]:
        """Tasks that failed themselves (not ``upstream_failed``), earliest first."""
        failed = [t for t in self.tasks.values() if t.state == "failed"]
        return [t.task_id for t in sorted(failed, key=lambda t: t.end or 0.0)]

    def first_task_start(self) -> float | None:
        starts = [t.start for t in self.tasks.values() if t.start is not None]
        return min(starts) if starts else None


# ------------------------------------------------------------------------------------------
# in the worker (Airflow imported, configured for the run's home)
# ------------------------------------------------------------------------------------------


def query_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's state, conf, (unmapped) task instances and ``return_value`` XComs, as JSON."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)
        if not found:
            raise DataError(f"no run {run_id!r} of DAG {dag_id!r} in the Airflow metadata DB")
        dag_run = found[0]
        instances = DagRun.fetch_task_instances(dag_id=dag_id, run_id=run_id, session=session)
        xcoms: Any = session.scalars(
            XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value", map_indexes=-1)
        )
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": _text(dag_run.state),
            "conf": dict(dag_run.conf or {}),
            "start": _epoch(dag_run.start_date),
            "end": _epoch(dag_run.end_date),
            "tasks": {ti.task_id: _task(ti) for ti in instances if ti.map_index == -1},
            "xcom": {xcom.task_id: XComModel.deserialize_value(xcom) for xcom in xcoms},
        }


def _task(ti: Any) -> dict[str, Any]:
    return {
        "task_id": ti.task_id,
        "state": _text(ti.state),
        "try_number": int(ti.try_number or 0),
        "max_tries": int(ti.max_tries or 0),
        "start": _epoch(ti.start_date),
        "end": _epoch(ti.end_date),
        "duration": ti.duration,
    }


def _text(state: Any) -> str | None:
    """An Airflow state enum (or None) as its plain value."""
    return None if state is None else str(getattr(state, "value", state))


def _epoch(moment: Any) -> float | None:
    return None if moment is None else float(moment.timestamp())


# ------------------------------------------------------------------------------------------
# in the harness (no Airflow import)
# ------------------------------------------------------------------------------------------


def read_run(home: str | Path, dag_id: str, run_id: str) -> DagRunRecord:
    """Read one run of the isolated Airflow installation in ``home`` (a worker process)."""
    home = Path(home)
    if not (home / "airflow.db").is_file():
        raise DataError(f"Airflow metadata DB {home / 'airflow.db'} does not exist")
    folder = home / "readback"
    folder.mkdir(exist_ok=True)
    name = safe_name(f"{dag_id}-{run_id}")
    payload = run_worker(
        ["readback", "--dag-id", dag_id, "--run-id", run_id],
        airflow_env(home),
        result_path=folder / f"{name}.json",
        log_path=folder / f"{name}.log",
        timeout_s=READBACK_TIMEOUT_S,
    )
    try:
        return DagRunRecord.from_dict(payload["record"])
    except (KeyError, TypeError) as exc:
        raise MlopsbenchError(f"unexpected read-back of {dag_id}/{run_id}: {exc}") from None


def read_alerts(path: str | Path) -> list[dict[str, Any]]:
    """Every record in an alerts log (missing file -> empty; broken lines are skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
