"""Read a DAG run back through Airflow's own models: run, task instances, ``return_value`` XComs.

:func:`query_run` runs where Airflow is imported (the worker, right after ``dag.test()``) and
returns plain JSON; :func:`read_run` is the harness's side: it starts the worker's ``readback``
command in the run's isolated home, since importing Airflow here would read (and create) its
configuration in the harness process. The alerts log the DAG callbacks append to is read here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    map_index: int = -1  # >= 0: one instance of a mapped task (recorded as ``task_id[i]``)
    hostname: str | None = None  # where it ran (a Celery worker: ``celery-1@host``)
    queue: str | None = None
    queued: float | None = None  # handed to the executor (epoch seconds)
    scheduled: float | None = None  # the scheduler decided it can run
    upstream: list[str] = field(default_factory=list)  # task ids it waited for
    tries: list[dict[str, Any]] = field(default_factory=list)  # earlier tries: state, hostname


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

    def hosts(self) -> dict[str, str | None]:
        """Where each task instance (``task_id`` or ``task_id[i]``) ran its last try."""
        return {key: task.hostname for key, task in self.tasks.items()}

    def ready_at(self, key: str) -> float | None:
        """When a task instance could start: its upstream tasks' last end (every instance of
        a mapped upstream task), else the run's start."""
        task = self.tasks[key]
        ends = [
            t.end for t in self.tasks.values() if t.task_id in task.upstream and t.end is not None
        ]
        return max(ends) if ends else self.start


# ------------------------------------------------------------------------------------------
# in the worker (Airflow imported, configured for the run's home)
# ------------------------------------------------------------------------------------------


def query_run(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's state, conf, task instances (with where they ran, when they were queued, what
    they waited for and their earlier tries) and ``return_value`` XComs, as JSON.

    A mapped task's instances are recorded as ``task_id[i]``, in ``tasks`` and ``xcom``.
    """
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
            XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")
        )
        upstream = _upstream(dag_id, session)
        tries = _earlier_tries(dag_id, run_id, session)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": _text(dag_run.state),
            "conf": dict(dag_run.conf or {}),
            "start": _epoch(dag_run.start_date),
            "end": _epoch(dag_run.end_date),
            "tasks": {
                _key(ti.task_id, ti.map_index): _task(ti, upstream, tries) for ti in instances
            },
            "xcom": {_key(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in xcoms},
        }


def _key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"


def _task(
    ti: Any, upstream: dict[str, list[str]], tries: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    key = _key(ti.task_id, ti.map_index)
    return {
        "task_id": ti.task_id,
        "state": _text(ti.state),
        "try_number": int(ti.try_number or 0),
        "max_tries": int(ti.max_tries or 0),
        "start": _epoch(ti.start_date),
        "end": _epoch(ti.end_date),
        "duration": ti.duration,
        "map_index": int(ti.map_index if ti.map_index is not None else -1),
        "hostname": ti.hostname or None,
        "queue": ti.queue,
        "queued": _epoch(ti.queued_dttm),
        "scheduled": _epoch(getattr(ti, "scheduled_dttm", None)),
        "upstream": upstream.get(ti.task_id, []),
        "tries": tries.get(key, []),
    }


def _upstream(dag_id: str, session: Any) -> dict[str, list[str]]:
    """Each task's upstream task ids, from the serialized DAG (empty if it cannot be read)."""
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        dag = SerializedDagModel.get_dag(dag_id, session=session)
    except Exception:  # an older layout of the table: the record is still useful without it
        return {}
    if dag is None:
        return {}
    return {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks}


def _earlier_tries(dag_id: str, run_id: str, session: Any) -> dict[str, list[dict[str, Any]]]:
    """The tries before the last one of each task instance (Airflow keeps them in a history
    table): how a retry after a lost worker shows up."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import select

    rows = session.scalars(
        select(TaskInstanceHistory)
        .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id)
        .order_by(TaskInstanceHistory.try_number)
    )
    tries: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tries.setdefault(_key(row.task_id, row.map_index), []).append(
            {
                "try_number": int(row.try_number or 0),
                "state": _text(row.state),
                "hostname": row.hostname or None,
                "start": _epoch(row.start_date),
                "end": _epoch(row.end_date),
            }
        )
    return tries


def _text(state: Any) -> str | None:
    """An Airflow state enum (or None) as its plain value."""
    return None if state is None else str(getattr(state, "value", state))


def _epoch(moment: Any) -> float | None:
    return None if moment is None else float(moment.timestamp())


# ------------------------------------------------------------------------------------------
# in the harness (no Airflow import)
# ------------------------------------------------------------------------------------------


def read_run(
    home: str | Path, dag_id: str, run_id: str, db_env: Mapping[str, str] | None = None
) -> DagRunRecord:
    """Read one run of the isolated Airflow installation in ``home`` (a worker process).

    ``db_env``: how to reach a metadata DB that is not ``home/airflow.db`` (a PostgreSQL URL
    and its password, as :meth:`AirflowServer.db_env` gives them).
    """
    home = Path(home)
    if not db_env and not (home / "airflow.db").is_file():
        raise DataError(f"Airflow metadata DB {home / 'airflow.db'} does not exist")
    folder = home / "readback" / safe_name(f"{dag_id}-{run_id}")
    folder.mkdir(parents=True, exist_ok=True)
    payload = run_worker(
        "readback",
        {"dag_id": dag_id, "run_id": run_id},
        airflow_env(home, extra=db_env),
        folder=folder,
        log_path=folder / "readback.log",
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
