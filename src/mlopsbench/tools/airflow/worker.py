"""The child process that imports Airflow: ``python -m mlopsbench.tools.airflow.worker``.

Airflow reads its configuration (home, DB, DAGs folder) once, when it is imported, so the adapter
prepares the environment and starts this module with it (:mod:`mlopsbench.support.workers`:
``COMMAND --request R.json --result OUT.json``). Three commands:

* ``run`` (``dag_id``, ``conf``, ``migrate``): [migrate the DB,] parse the DAGs folder, validate
  the conf against the DAG's params, ``dag.test(run_conf=...)``, then read the run back through
  Airflow's models; writes the run id, state, seconds per phase and the record (task
  instances, XComs).
* ``readback`` (``dag_id``, ``run_id``): the record of an earlier run (what ``evidence`` checks).
* ``inspect``: parse the DAGs folder and describe every DAG (tasks, edges, params, schedule,
  retries) plus the files parsed, import errors and which heavy modules parsing pulled in.

Each writes its JSON to ``--result`` atomically; user errors are reported there (``error``,
``error_type``) with exit code 2, so the parent can raise the right one-line error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError
from mlopsbench.support import workers
from mlopsbench.support.logs import last_line
from mlopsbench.tools.airflow import metadata

HEAVY_MODULES = ("torch", "mlflow", "transformers", "sklearn", "matplotlib")


class DagImportError(MlopsbenchError):
    """A DAG file failed to import (syntax error, missing module, bad cron...)."""


def main(argv: list[str] | None = None) -> int:
    commands = {
        "run": lambda request: run_dag(
            _text(request, "dag_id"), _conf(request), migrate=bool(request.get("migrate"))
        ),
        "readback": lambda request: {
            "record": metadata.query_run(_text(request, "dag_id"), _text(request, "run_id"))
        },
        "inspect": lambda request: inspect_dags(),
    }
    return workers.serve(commands, argv, prog="python -m mlopsbench.tools.airflow.worker")


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the worker's request needs {key!r} (a non-empty string)")
    return value


def _conf(request: dict[str, Any]) -> dict[str, Any]:
    conf = request.get("conf", {})
    if not isinstance(conf, dict):
        raise ConfigError("the run conf must be a JSON object")
    return conf


# ------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------


def run_dag(dag_id: str, conf: dict[str, Any], migrate: bool) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    import airflow

    timings["import"] = time.perf_counter() - started
    t0 = time.perf_counter()
    bag = _dag_bag()
    timings["dag_parse"] = time.perf_counter() - t0
    dag = _get_dag(bag, dag_id)
    validate_conf(dag, conf)  # before touching the DB: a typo costs no migration
    t0 = time.perf_counter()
    if migrate:
        from airflow.utils import db

        db.upgradedb()
        timings["db_migrate"] = time.perf_counter() - t0
    else:
        check_db()
    t0 = time.perf_counter()
    test_started_at = time.time()
    dag_run = dag.test(run_conf=conf)
    timings["dag_test"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    record = metadata.query_run(dag_id, dag_run.run_id)
    timings["readback"] = time.perf_counter() - t0
    return {
        "dag_id": dag_id,
        "run_id": dag_run.run_id,
        "state": record["state"],
        "dag_test_started_at": test_started_at,
        "timings": timings,
        "airflow_version": airflow.__version__,
        "record": record,
    }


def _dag_bag() -> Any:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    folder = conf.get("core", "dags_folder")
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        path, error = next(iter(bag.import_errors.items()))
        raise DagImportError(
            f"DAG file {path} failed to import: {last_line(error) or 'unknown error'}"
        )
    return bag


def _get_dag(bag: Any, dag_id: str) -> Any:
    dag = bag.dags.get(dag_id)  # not get_dag(): that queries the DB, which may not exist yet
    if dag is None:
        known = ", ".join(sorted(bag.dags)) or "none"
        raise ConfigError(f"no DAG {dag_id!r} in the DAGs folder (found: {known})")
    return dag


def validate_conf(dag: Any, conf: dict[str, Any]) -> None:
    """Reject unknown keys and values that break a param's JSON schema, all in one line.

    Airflow itself accepts unknown conf keys silently; a typo (``epoch``) would only surface as a
    failed first task, so it is caught here.
    """
    from airflow.sdk import ParamsDict  # type: ignore[attr-defined]  # a lazy export
    from airflow.sdk.exceptions import ParamValidationError

    problems = []
    unknown = sorted(set(conf) - set(dag.params))
    if unknown:
        problems.append(f"unknown param(s) for DAG {dag.dag_id}: {', '.join(unknown)}")
    params = ParamsDict()
    params.update(dag.params)
    try:
        params.update({k: v for k, v in conf.items() if k in dag.params})
        params.validate()
    except ParamValidationError as exc:
        problems.append(str(exc).splitlines()[0])
    if problems:
        raise ConfigError("; ".join(problems))


def check_db() -> None:
    """One clear line when the metadata DB was never migrated (dag.test would fail obscurely)."""
    from airflow import settings
    from airflow.utils import db

    try:
        db.check_migrations(timeout=1)
    except Exception:
        raise DataError(
            f"Airflow metadata DB {settings.SQL_ALCHEMY_CONN} is not initialised: "
            "run `airflow db migrate` with the same AIRFLOW_HOME"
        ) from None


# ------------------------------------------------------------------------------------------
# inspect
# ------------------------------------------------------------------------------------------


def inspect_dags() -> dict[str, Any]:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.perf_counter()
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    seconds = time.perf_counter() - t0
    return {
        "dags_folder": conf.get("core", "dags_folder"),
        "parse_seconds": seconds,
        "parsed_files": sorted(Path(stat.file).name for stat in bag.dagbag_stats),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "heavy_modules_loaded": [m for m in HEAVY_MODULES if m in sys.modules],
        "dags": {dag_id: describe_dag(bag.dags[dag_id]) for dag_id in sorted(bag.dags)},
    }


def describe_dag(dag: Any) -> dict[str, Any]:
    args = dag.default_args or {}
    retry_delay = args.get("retry_delay")
    return {
        "fileloc": dag.fileloc,
        "schedule": None if dag.schedule is None else str(dag.schedule),
        # What Airflow made of it: the timetable's summary and description (None: manual only).
        "timetable": _timetable(dag),
        "catchup": dag.catchup,
        "tags": sorted(dag.tags or []),
        "tasks": sorted(dag.task_ids),
        "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "mapped": sorted(t.task_id for t in dag.tasks if _is_mapped(t)),
        "params": dag.params.dump(),
        "retries": args.get("retries"),
        "retry_delay_s": retry_delay.total_seconds() if retry_delay is not None else None,
        "task_failure_callback": _callable_name(args.get("on_failure_callback")),
        "dag_success_callback": _callable_name(dag.on_success_callback),
        "dag_failure_callback": _callable_name(dag.on_failure_callback),
    }


def _timetable(dag: Any) -> dict[str, Any] | None:
    """The timetable the scheduler gets: the DAG serialized and read back, as it is stored."""
    if dag.schedule is None:
        return None
    from airflow.serialization.serialized_objects import DagSerialization

    timetable = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).timetable
    return {
        "class": type(timetable).__name__,
        "summary": timetable.summary,
        "description": getattr(timetable, "description", None),
    }


def _is_mapped(task: Any) -> bool:
    """A task expanded at run time (``.expand``): one task instance per item."""
    return bool(getattr(task, "is_mapped", False))


def _callable_name(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if value is None:
        return None
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"


if __name__ == "__main__":
    workers.exit_now(main())
