"""The sweep on Airflow: ``pipeline/mlopsbench_sweep.py``, trials as one mapped task.

``run_trial`` is expanded over ``plan_trials``' list (dynamic task mapping): one task
instance per trial, ``select_best`` the fan-in over their XComs. It runs the way the adapter
runs a use case's DAG (:mod:`adapter`):

* ``workers`` = 1 (default): ``dag.test()`` in a worker process on an isolated SQLite home;
  dag.test runs one task instance at a time. The trials are read back through Airflow's models
  (``DagRun.fetch_task_instances`` and the ``return_value`` XComs), as the adapter reads a run.
* ``workers`` > 1: Airflow's own parallelism, a LocalExecutor deployment (PostgreSQL) whose
  ``[core] parallelism`` is ``workers``: that many task processes at once, so that many trials
  side by side. The run is triggered over the REST API and its mapped task instances are
  listed through it (``GET .../taskInstances``) before the deployment stops.
* ``options["executor"]`` picks the path explicitly (``dag-test``, ``local``, ``celery``;
  Celery: ``workers`` workers of one slot each). dag.test with ``workers`` > 1 is refused: it
  could not run two trials at once.

``stored_trials`` is how many ``run_trial`` instances Airflow holds as succeeded. MLflow is not
logged to: the core's sweep has no serving module for a pyfunc model of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder, non_empty_dir
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.airflow import adapter, common, deployment, metadata
from mlopsbench.tools.airflow.pipeline import dag_support
from mlopsbench.usecases.common.params import flat_values

DAG_ID = common.SWEEP_DAG_ID
TRIAL_TASK = "run_trial"
DATA_TASK = "prepare_data"
EVALUATE_TASK = "evaluate_best"
PROMOTE_TASK = "promote_best"


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder("airflow", request, distributions=get_tool("airflow").distributions)
    cfg = request.config
    executor = sweep_executor(request.options, int(cfg.workers))
    recorder.usecase.check_inputs(cfg)  # a missing data file fails before any Airflow work
    layout = adapter._Layout.for_request(request)
    conf = {**flat_values(cfg), "run_root": str(layout.artifact_root)}
    if executor == adapter.DAG_TEST:
        ran = _run_dag_test(request, layout, conf)
    else:
        ran = _run_deployed(request, layout, conf, executor)
    record, stored, timings, info = ran
    info = {**_run_info(layout, record), **info}
    return _result(recorder, layout, record, stored, timings, info)


_Ran = tuple[metadata.DagRunRecord, int, dict[str, float], dict[str, Any]]


def _run_dag_test(request: RunRequest, layout: adapter._Layout, conf: dict[str, Any]) -> _Ran:
    """dag.test() in a worker process; the trials read back through Airflow's models."""
    worker = adapter._run_worker(request, layout, DAG_ID, conf)
    record = metadata.DagRunRecord.from_dict(worker["record"])
    info = {
        "executor": "dag.test()",
        "airflow_version": worker.get("airflow_version"),
        "database": "sqlite",
        "trials_read_from": "Airflow models (DagRun.fetch_task_instances)",
    }
    return record, _stored_trials(_instances_of(record)), _dag_test_timings(worker, record), info


def _run_deployed(
    request: RunRequest, layout: adapter._Layout, conf: dict[str, Any], executor: str
) -> _Ran:
    """A deployment triggered over REST; the trials listed through its REST API. LocalExecutor:
    ``workers`` task slots; Celery: ``workers`` workers of one slot each."""
    workers = int(request.config.workers)
    deployed = deployment.run_dag(
        executor, layout.home, layout.artifact_root, DAG_ID, conf,
        workers=workers,
        parallelism=workers if executor == "local" else None,
        extra_env=adapter._deployment_env(request, layout),
        timeout_s=adapter._float_option(request.options, "timeout_s", adapter.DEFAULT_TIMEOUT_S),
    )  # fmt: skip
    timings = dict(deployed.timings)
    timings["dag_run"] = deployed.finished_at - deployed.triggered_at
    info = {
        **adapter._deployment_info(deployed),
        "trial_instances": api_trial_spans(deployed.api_task_instances),
        "parallelism": deployed.settings.slots,
        "trials_read_from": "REST API (GET /api/v2/dags/{id}/dagRuns/{run}/taskInstances)",
    }
    return deployed.record, _stored_trials(deployed.api_task_instances), timings, info


def sweep_executor(options: Mapping[str, Any], workers: int) -> str:
    """The executor of the run: the option if given, else dag.test for one worker and a
    LocalExecutor deployment for more."""
    if not options.get("executor"):
        return adapter.DAG_TEST if workers == 1 else "local"
    executor = adapter.executor_option(options)
    if executor == adapter.DAG_TEST and workers > 1:
        raise ConfigError(
            f"dag.test() runs one task at a time: workers={workers} needs executor local or celery"
        )
    return executor


# ------------------------------------------------------------------------------------------
# what Airflow stored
# ------------------------------------------------------------------------------------------


def _instances_of(record: metadata.DagRunRecord) -> list[dict[str, Any]]:
    """The run's task instances as plain rows (the same fields the REST API lists)."""
    return [
        {"task_id": t.task_id, "map_index": t.map_index, "state": t.state}
        for t in record.tasks.values()
    ]


def _stored_trials(instances: list[dict[str, Any]]) -> int:
    """Mapped ``run_trial`` instances that Airflow holds as succeeded."""
    return sum(
        1
        for ti in instances
        if ti.get("task_id") == TRIAL_TASK
        and int(ti.get("map_index", -1)) >= 0
        and ti.get("state") == "success"
    )


def trial_results(record: metadata.DagRunRecord) -> list[dict[str, Any]]:
    """What each ``run_trial`` instance returned (its XCom), in map-index order."""
    mapped = [t for t in record.tasks.values() if t.task_id == TRIAL_TASK and t.map_index >= 0]
    keys = [f"{TRIAL_TASK}[{t.map_index}]" for t in sorted(mapped, key=lambda t: t.map_index)]
    return [record.xcom[key] for key in keys if isinstance(record.xcom.get(key), dict)]


def trial_spans(record: metadata.DagRunRecord) -> dict[int, dict[str, Any]]:
    """Per map index: state, start, end (epoch seconds) and where it ran."""
    return {
        t.map_index: {"state": t.state, "start": t.start, "end": t.end, "host": t.hostname}
        for t in record.tasks.values()
        if t.task_id == TRIAL_TASK and t.map_index >= 0
    }


# ------------------------------------------------------------------------------------------
# the record
# ------------------------------------------------------------------------------------------


def _result(
    recorder: RunRecorder,
    layout: adapter._Layout,
    record: metadata.DagRunRecord,
    stored: int,
    timings: dict[str, float],
    info: dict[str, Any],
) -> RunResult:
    trials = trial_results(record)
    data = record.xcom.get(DATA_TASK) or {}
    evaluation = record.xcom.get(EVALUATE_TASK) or {}
    on_postgres = info.get("database") == "postgres"
    artifacts = {
        "airflow_db": str(layout.postgres if on_postgres else layout.db),
        "alerts_log": str(layout.alerts_log),
    }
    if info.get("promoted"):
        artifacts["promoted"] = str(info["promoted"])
    if record.state != "success" or not trials or "metrics" not in evaluation:
        return recorder.failed(
            _failure(record, layout.alerts_log),
            tool_info=info,
            artifacts=artifacts,
            timings=timings,
        )
    return sweep_record(
        recorder,
        trials=trials,
        evaluation=evaluation,
        data=data,
        stored_trials=stored,
        artifacts=artifacts,
        tool_info=info,
        timings=timings,
    )


def _failure(record: metadata.DagRunRecord, alerts_log: Path) -> str:
    failed = record.failed_tasks()
    if not failed:
        return f"DAG run {record.run_id} ended in state {record.state}"
    return f"task {failed[0]} failed: {adapter._task_error(alerts_log, record.run_id, failed[0])}"


def api_trial_spans(instances: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per map index, as the REST API lists it: state, start and end (ISO), host, label."""
    return {
        int(ti["map_index"]): {
            "state": ti.get("state"),
            "start": ti.get("start_date"),
            "end": ti.get("end_date"),
            "host": ti.get("hostname"),
            "label": ti.get("rendered_map_index"),
        }
        for ti in instances
        if ti.get("task_id") == TRIAL_TASK and int(ti.get("map_index", -1)) >= 0
    }


def _run_info(layout: adapter._Layout, record: metadata.DagRunRecord) -> dict[str, Any]:
    promote = record.tasks.get(PROMOTE_TASK)
    return {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "state": record.state,
        "task_states": record.task_states(),
        "airflow_home": str(layout.home),
        "artifact_dir": str(dag_support.run_folder(layout.artifact_root, DAG_ID, record.run_id)),
        "mapped_instances": len(trial_spans(record)),
        "trial_instances": trial_spans(record),
        # The short-circuit gate: promote_best ran (a path) or was skipped.
        "promoted": record.xcom.get(PROMOTE_TASK)
        if promote and promote.state == "success"
        else None,
        "hosts": record.hosts(),
        "earlier_tries": {key: t.tries for key, t in record.tasks.items() if t.tries},
    }


def _dag_test_timings(worker: dict[str, Any], record: metadata.DagRunRecord) -> dict[str, float]:
    """Airflow's own bookkeeping around the core calls (see the adapter's timings)."""
    inner = dict(worker.get("timings") or {})
    timings = {k: float(inner[k]) for k in ("import", "dag_parse", "db_migrate") if k in inner}
    core = sum(_core_seconds(value) for value in record.xcom.values())
    timings["dag_test_overhead"] = max(float(inner.get("dag_test", 0.0)) - core, 0.0)
    timings["readback"] = float(inner.get("readback", 0.0))
    return timings


def _core_seconds(value: Any) -> float:
    seconds = value.get("seconds") if isinstance(value, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else 0.0


# ------------------------------------------------------------------------------------------
# evidence: what Airflow itself recorded
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Read the sweep run back through Airflow's models and check it and the files its XComs
    point to (the best trial's model and history, the evaluation's plots)."""
    info = result.tool_info
    try:
        if info.get("database") == "postgres":
            record = adapter._read_from_postgres(info)
        else:
            record = metadata.read_run(info["airflow_home"], info["dag_id"], info["run_id"])
    except (KeyError, TypeError, MlopsbenchError):
        return dict.fromkeys(EVIDENCE_KEYS, False)
    trials = trial_results(record)
    evaluation = record.xcom.get(EVALUATE_TASK) or {}
    data = record.xcom.get(DATA_TASK) or {}
    best = record.xcom.get("select_best") or {}
    artifacts = evaluation.get("artifacts") or {}
    history = best.get("history") or []
    # The gate is a short-circuit: a sweep whose best trial fails it still succeeds.
    expected = "failed" if result.status == "failed" else "success"
    planned = int(result.params.get("trials", 0))
    return {
        "params": bool(record.conf)
        and all(record.conf.get(k) == v for k, v in result.params.items()),
        "per_epoch_metrics": bool(history) and all("epoch" in row for row in history),
        "final_metrics": "accuracy" in (evaluation.get("metrics") or {}),
        "model_artifact": non_empty_dir(best.get("model_dir")),
        "plots": any(str(p).endswith(".png") and Path(p).is_file() for p in artifacts.values()),
        "lineage": bool(data.get("source")) and bool(data.get("digest")),
        "run_state": record.state == expected and len(trials) == planned,
    }
