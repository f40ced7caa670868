"""Read a DAG run back from Airflow's SQLite metadata DB, without importing Airflow.

Importing Airflow in the harness process would read (and create) its configuration there; the
runs we read live in per-run ``AIRFLOW_HOME`` folders, so plain ``sqlite3`` (read-only) is both
cheaper and safer. Tables and columns used: ``dag_run`` (state, conf, dates), ``task_instance``
(state, try_number, dates, duration) and ``xcom`` (JSON ``value``), as in Airflow 3.x.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlopsbench.errors import DataError


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

    def task_states(self) -> dict[str, str | None]:
        return {task_id: task.state for task_id, task in self.tasks.items()}

    def failed_tasks(self) -> list[str]:
        """Tasks that failed themselves (not ``upstream_failed``), earliest first."""
        failed = [t for t in self.tasks.values() if t.state == "failed"]
        return [t.task_id for t in sorted(failed, key=lambda t: t.end or 0.0)]


def connect(db_path: str | Path) -> sqlite3.Connection:
    path = Path(db_path)
    if not path.is_file():
        raise DataError(f"Airflow metadata DB {path} does not exist")
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30)


def read_run(db_path: str | Path, dag_id: str, run_id: str) -> DagRunRecord:
    """The run's state, conf, task instances and ``return_value`` XComs."""
    try:
        with closing(connect(db_path)) as db:
            return _read_run(db, dag_id, run_id)
    except sqlite3.Error as exc:
        raise DataError(f"cannot read Airflow metadata DB {db_path}: {exc}") from None


def _read_run(db: sqlite3.Connection, dag_id: str, run_id: str) -> DagRunRecord:
    row = db.execute(
        "SELECT state, conf, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?",
        (dag_id, run_id),
    ).fetchone()
    if row is None:
        raise DataError(f"no run {run_id!r} of DAG {dag_id!r} in the Airflow metadata DB")
    record = DagRunRecord(
        dag_id=dag_id,
        run_id=run_id,
        state=row[0],
        conf=_json(row[1]) or {},
        start=_epoch(row[2]),
        end=_epoch(row[3]),
    )
    for task_id, state, tries, max_tries, start, end, duration in db.execute(
        "SELECT task_id, state, try_number, max_tries, start_date, end_date, duration "
        "FROM task_instance WHERE dag_id = ? AND run_id = ? AND map_index = -1",
        (dag_id, run_id),
    ):
        record.tasks[task_id] = TaskRecord(
            task_id,
            state,
            int(tries or 0),
            int(max_tries or 0),
            _epoch(start),
            _epoch(end),
            duration,
        )
    for task_id, value in db.execute(
        "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
        "AND key = 'return_value' AND map_index = -1",
        (dag_id, run_id),
    ):
        record.xcom[task_id] = _json(value)
    return record


def latest_run_id(db_path: str | Path, dag_id: str) -> str | None:
    try:
        with closing(connect(db_path)) as db:
            row = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _epoch(value: Any) -> float | None:
    """Airflow stores naive UTC timestamps (``2026-01-01 10:00:00.123456``)."""
    if not value:
        return None
    text = str(value).replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text[:26], fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None
