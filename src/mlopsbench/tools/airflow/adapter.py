"""Run a use case as an Airflow DAG: ``dag.test()`` in an isolated home, or on a deployment.

Per run folder: ``airflow_home/`` (metadata DB, logs), ``artifacts/<dag_id>/<run_id>/``
(everything the tasks write), ``alerts.jsonl`` and ``airflow.log`` (the worker's output).

Executors (``RunRequest.options["executor"]``, ``compare --airflow-executor``):

* ``dag-test`` (default): the DAG (``pipeline/mlopsbench_<usecase>.py``) runs with
  ``dag.test()`` in a child process (``worker.py``, because Airflow reads its configuration at
  import; SQLite in ``airflow_home/``); the worker then reads the run back through Airflow's
  models (task instances, XComs) and the record is built from that.
* ``local`` / ``celery``: a deployment of :mod:`server` starts in ``airflow_home/`` (PostgreSQL
  for both; Redis and ``workers`` Celery workers for ``celery``), the DAG is triggered over the
  REST API, read back from PostgreSQL, and the deployment is stopped (:mod:`deployment`).

Timings: the core stages (``data``, ``train``/``model``, ``evaluate``) are the ``seconds`` each
stage returned, read from the tasks' XComs; ``tracking`` is the ``log_to_mlflow`` task
instance's duration. dag.test: ``import``, ``dag_parse``, ``db_migrate`` and
``dag_test_overhead`` (dag.test time not spent in core calls or MLflow logging) are Airflow's
bookkeeping; ``worker_start`` / ``worker_exit`` are the child's interpreter start-up and
shutdown, and ``readback`` the read through Airflow's models. Deployments: ``services_start``
(PostgreSQL, Redis), ``db_migrate``, ``airflow_ready`` (processes healthy, DAG parsed),
``scheduling`` / ``queueing`` / ``task_overhead`` (summed over the task instances, below),
``run_other`` (the rest of trigger-to-finished), ``readback`` and ``deployment_stop``.

Per task instance, for every executor (``tool_info["task_latency_s"]``): ``scheduling`` (its
upstream tasks done -> handed to the executor), ``queueing`` (-> started on a worker),
``in_task`` (duration minus the core stage's own seconds) and ``total`` (upstream done -> its
end, minus the core seconds). ``task_overhead_median_s`` is the median ``total`` over the task
instances after the first (whose wait includes one-off set-up).

Options (``RunRequest.options``): ``executor``, ``workers`` (Celery, default 2),
``alert_webhook`` (URL, passed as environment), ``airflow_home`` (dag-test: reuse a migrated home:
no migration, DB checked instead), ``retries`` and ``retry_delay_s`` (override the DAGs'
default_args), ``timeout_s`` (whole DAG run, default 3600).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder, core_timings, non_empty_dir
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.airflow import common, deployment, metadata
from mlopsbench.tools.airflow.pipeline import alerts, dag_support
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.common.usecase import STAGES, UseCase

TRACKING_TASK = "log_to_mlflow"
GATE_TASK = "quality_gate"
DEFAULT_TIMEOUT_S = 3600.0
DAG_TEST = "dag-test"
EXECUTORS = (DAG_TEST, *deployment.DEPLOYED_EXECUTORS)


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder("airflow", request, distributions=get_tool("airflow").distributions)
    executor = executor_option(request.options)
    workers = deployment.workers_option(request.options)
    _preflight(recorder.usecase, request)
    layout = _Layout.for_request(request)
    dag_id = common.dag_id(recorder.usecase.name)
    conf = _run_conf(request, layout)
    if executor == DAG_TEST:
        worker = _run_worker(request, layout, dag_id, conf)
        record = metadata.DagRunRecord.from_dict(worker["record"])
        timings = _timings(recorder.usecase, worker, record)
        info = {
            "executor": "dag.test()",
            "airflow_version": worker.get("airflow_version"),
            **_overheads(worker, record),
        }
    else:
        deployed = deployment.run_dag(
            executor, layout.home, layout.artifact_root, dag_id, conf,
            workers=workers, extra_env=_deployment_env(request, layout),
            timeout_s=_float_option(request.options, "timeout_s", DEFAULT_TIMEOUT_S),
        )  # fmt: skip
        record = deployed.record
        timings = _deployment_timings(recorder.usecase, deployed)
        info = _deployment_info(deployed)
    info.update(_latencies(record))
    return _result(recorder, layout, record, timings, info)


def executor_option(options: Mapping[str, Any]) -> str:
    """``options["executor"]``: dag-test (default), local or celery."""
    executor = str(options.get("executor") or DAG_TEST).strip().lower().replace("_", "-")
    if executor not in EXECUTORS:
        raise ConfigError(
            f"option executor must be one of {', '.join(EXECUTORS)}, got {options['executor']!r}"
        )
    return executor


def _preflight(usecase: UseCase, request: RunRequest) -> None:
    """Inputs that cannot work fail here, before the Airflow home or any run file exists.

    A missing data file would otherwise cost a DB migration and a failed DAG run (with its
    record); an unreachable MLflow server, the whole pipeline plus ``log_to_mlflow``'s retries.
    """
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)


def _run_conf(request: RunRequest, layout: _Layout) -> dict[str, Any]:
    """The DAG run's conf: every core setting (one param each) plus where files and MLflow go.

    The webhook is not in it: the conf is stored in the metadata DB and shown in the UI.
    """
    conf = flat_values(request.config)
    conf["run_root"] = str(layout.artifact_root)
    if request.tracking_uri:
        conf["mlflow_uri"] = request.tracking_uri
    return conf


# ------------------------------------------------------------------------------------------
# the child process
# ------------------------------------------------------------------------------------------


class _Layout:
    """Where one run keeps its Airflow home, artifacts, alerts and worker output."""

    def __init__(self, out_dir: Path, home: Path, migrate: bool) -> None:
        self.out_dir = out_dir
        self.home = home
        self.migrate = migrate
        self.artifact_root = out_dir / "artifacts"
        self.alerts_log = out_dir / "alerts.jsonl"
        self.worker_log = out_dir / "airflow.log"
        self.worker_dir = out_dir / "airflow_worker"  # run-request.json, run-result.json

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    @property
    def postgres(self) -> Path:
        return self.home / "postgres"

    @classmethod
    def for_request(cls, request: RunRequest) -> _Layout:
        out = Path(request.out_dir).resolve()
        reuse = request.options.get("airflow_home")
        home = Path(reuse).expanduser().resolve() if reuse else out / "airflow_home"
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create Airflow home {home}: {exc.strerror}") from None
        return cls(out, home, migrate=not reuse)


def _run_worker(
    request: RunRequest, layout: _Layout, dag_id: str, conf: dict[str, Any]
) -> dict[str, Any]:
    env = common.airflow_env(
        layout.home,
        artifact_root=layout.artifact_root,
        alerts_log=layout.alerts_log,
        extra=_option_env(request.options),
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the run's conf says where to log, nothing implicit
    timeout = _float_option(request.options, "timeout_s", DEFAULT_TIMEOUT_S)
    work = {"dag_id": dag_id, "conf": conf, "migrate": layout.migrate}
    return common.run_worker("run", work, env, layout.worker_dir, layout.worker_log, timeout)


def _option_env(options: Mapping[str, Any]) -> dict[str, str]:
    """Options that reach the DAG through its environment, not the run conf.

    The webhook URL is a secret: the conf is stored in the metadata DB and shown in the UI.
    """
    env = {}
    if options.get("alert_webhook"):
        env[alerts.ENV_ALERT_WEBHOOK] = str(options["alert_webhook"])
    if "retries" in options:
        env[dag_support.ENV_RETRIES] = str(options["retries"])
    if "retry_delay_s" in options:
        env[dag_support.ENV_RETRY_DELAY] = str(options["retry_delay_s"])
    return env


def _deployment_env(request: RunRequest, layout: _Layout) -> dict[str, str]:
    """What every process of a deployment gets besides Airflow's settings: the run's
    alerts log and the options that travel as environment (webhook, retries)."""
    env = {alerts.ENV_ALERT_LOG: str(layout.alerts_log), **_option_env(request.options)}
    env["MLFLOW_TRACKING_URI"] = ""  # the run's conf says where to log, nothing implicit
    return env


def _float_option(options: Mapping[str, Any], key: str, default: float) -> float:
    try:
        return float(options.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"option {key} must be a number, got {options.get(key)!r}") from None


# ------------------------------------------------------------------------------------------
# the record
# ------------------------------------------------------------------------------------------


def _result(
    recorder: RunRecorder,
    layout: _Layout,
    record: metadata.DagRunRecord,
    timings: dict[str, float],
    info: dict[str, Any],
) -> RunResult:
    outputs = _stage_outputs(record)
    data, model, evaluation = (outputs[stage] for stage in STAGES)
    tool_info = {**_tool_info(layout, record, data, model), **info}
    on_postgres = tool_info.get("database") == "postgres"
    artifacts = {
        **({"model": model["model_dir"]} if "model_dir" in model else {}),
        **({"data": data["data_path"]} if "data_path" in data else {}),
        **(evaluation.get("artifacts") or {}),
        "airflow_db": str(layout.postgres if on_postgres else layout.db),
        "alerts_log": str(layout.alerts_log),
        **({} if on_postgres else {"airflow_log": str(layout.worker_log)}),
    }
    error = _failure(record, evaluation, layout.alerts_log)
    if error is not None:
        return recorder.failed(
            error,
            tool_info=tool_info,
            artifacts=artifacts,
            metrics=evaluation.get("metrics"),
            timings=timings,
            history=model.get("history") or [],
        )
    return recorder.finish(
        metrics=evaluation.get("metrics") or {},
        gate=evaluation.get("gate"),
        artifacts=artifacts,
        tool_info=tool_info,
        history=model.get("history") or [],
        timings=timings,
        model=model.get("model_name"),
    )


def _stage_outputs(record: metadata.DagRunRecord) -> dict[str, dict[str, Any]]:
    """What each core stage returned: its task (named like the stage) pushed it to XCom."""
    return {stage: dict(record.xcom.get(stage) or {}) for stage in STAGES}


def _failure(
    record: metadata.DagRunRecord, evaluation: Mapping[str, Any], alerts_log: Path
) -> str | None:
    """Why the run failed (None when it ended at the gate: passed, or failed by the gate only).

    The failing task's own error message comes from its failure alert.
    """
    if record.state == "success":
        return None
    failed = record.failed_tasks()
    if failed == [GATE_TASK] and (evaluation.get("gate") or {}).get("passed") is False:
        return None
    if not failed:
        return f"DAG run {record.run_id} ended in state {record.state}"
    task_id = failed[0]
    return f"task {task_id} failed: {_task_error(alerts_log, record.run_id, task_id)}"


def _task_error(alerts_log: Path, run_id: str, task_id: str) -> str:
    for alert in reversed(metadata.read_alerts(alerts_log)):
        details = alert.get("details") or {}
        if (
            details.get("event") == "task_failed"
            and details.get("run_id") == run_id
            and details.get("task_id") == task_id
        ):
            return str(details.get("error") or "no error message")
    return "see the task log"


def _timings(
    usecase: UseCase, worker: dict[str, Any], record: metadata.DagRunRecord
) -> dict[str, float]:
    inner = dict(worker.get("timings") or {})
    timings = {k: float(inner[k]) for k in ("import", "dag_parse", "db_migrate") if k in inner}
    core = core_timings(usecase, _stage_outputs(record))
    timings.update(core)
    in_tasks = sum(core.values())
    tracking = record.tasks.get(TRACKING_TASK)
    if tracking is not None and tracking.state == "success" and tracking.duration is not None:
        timings["tracking"] = float(tracking.duration)
        in_tasks += float(tracking.duration)
    timings["dag_test_overhead"] = max(float(inner.get("dag_test", 0.0)) - in_tasks, 0.0)
    # Interpreter start-up before the worker's main() and shutdown after its result was written.
    started, finished = worker.get("started_at"), worker.get("finished_at")
    timings["worker_start"] = max(float(started or 0.0) - float(worker["spawned_at"]), 0.0)
    timings["worker_exit"] = max(float(worker["exited_at"]) - float(finished or 0.0), 0.0)
    timings["readback"] = float(inner.get("readback", 0.0))
    return timings


def _tool_info(
    layout: _Layout,
    record: metadata.DagRunRecord,
    data: dict[str, Any],
    model: dict[str, Any],
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "state": record.state,
        "task_states": record.task_states(),
        "try_numbers": {t: r.try_number for t, r in record.tasks.items()},
        "airflow_home": str(layout.home),
        "airflow_db": str(layout.db),
        "database": "sqlite",
        "artifact_dir": str(
            dag_support.run_folder(layout.artifact_root, record.dag_id, record.run_id)
        ),
        "alerts_log": str(layout.alerts_log),
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "seconds")},
    }
    info.update({key: model[key] for key in ("precision", "device") if key in model})
    tracked = record.xcom.get(TRACKING_TASK)
    if isinstance(tracked, dict):
        info["mlflow"] = {k: tracked.get(k) for k in ("run_id", "experiment_id", "model_uri")}
    return info


def _overheads(worker: dict[str, Any], record: metadata.DagRunRecord) -> dict[str, Any]:
    """dag.test's one-off set-up and what each task instance costs around its core call.

    ``dag_test_setup_s``: from calling ``dag.test()`` to the first task instance's start
    (serialising the DAG, creating the run, starting the in-process execution API).
    ``task_overhead_s``: task-instance duration minus the seconds its core stage reported.
    """
    began, first_start = worker.get("dag_test_started_at"), record.first_task_start()
    setup = max(first_start - float(began), 0.0) if began and first_start else None
    per_task: dict[str, float] = {}
    for task_id, task in sorted(record.tasks.items(), key=lambda item: item[1].start or 0.0):
        if task.duration is not None and task.state == "success":
            per_task[task_id] = max(float(task.duration) - _core_seconds(record, task_id), 0.0)
    return {"dag_test_setup_s": setup, "task_overhead_s": per_task}


def _core_seconds(record: metadata.DagRunRecord, task_id: str) -> float:
    """The seconds the core stage of a task instance reported (0 for a task of the tool's)."""
    value = record.xcom.get(task_id)
    stage = task_id.split("[", 1)[0]  # a mapped instance: build_model[2]
    seconds = value.get("seconds") if isinstance(value, dict) and stage in STAGES else None
    return float(seconds) if isinstance(seconds, int | float) else 0.0


def task_latencies(record: metadata.DagRunRecord) -> dict[str, dict[str, float | None]]:
    """What each finished task instance cost around its core call, in seconds (see the module
    docstring); ``scheduling``/``queueing`` are None where nothing was queued (dag.test)."""
    rows: dict[str, dict[str, float | None]] = {}
    for key, task in sorted(record.tasks.items(), key=lambda item: item[1].start or 0.0):
        if task.state != "success" or task.start is None or task.end is None:
            continue
        ready, core = record.ready_at(key), _core_seconds(record, key)
        queued = task.queued if task.queued is not None and ready is not None else None
        rows[key] = {
            "scheduling": max(queued - ready, 0.0) if queued is not None and ready else None,
            "queueing": max(task.start - queued, 0.0) if queued is not None else None,
            "in_task": max(task.end - task.start - core, 0.0),
            "total": max(task.end - ready - core, 0.0) if ready is not None else None,
        }
    return rows


def _latencies(record: metadata.DagRunRecord) -> dict[str, Any]:
    """Per task instance and their medians over the instances after the first."""
    rows = task_latencies(record)
    later = list(rows.values())[1:]

    def median(part: str) -> float | None:
        values = [float(row[part]) for row in later if row[part] is not None]  # type: ignore[arg-type]
        return statistics.median(values) if values else None

    return {
        "task_latency_s": rows,
        "task_overhead_median_s": median("total"),
        "latency_median_s": {part: median(part) for part in ("scheduling", "queueing", "in_task")},
        "hosts": record.hosts(),
        "queues": {key: task.queue for key, task in record.tasks.items()},
        "earlier_tries": {k: t.tries for k, t in record.tasks.items() if t.tries},
    }


def _deployment_timings(usecase: UseCase, deployed: deployment.DeploymentRun) -> dict[str, float]:
    """Core stages, MLflow logging, the deployment's start/stop and the executor's share of
    the DAG run (summed over task instances) with the rest of trigger-to-finished apart."""
    record = deployed.record
    timings = dict(deployed.timings)
    core = core_timings(usecase, _stage_outputs(record))
    timings.update(core)
    tracking = record.tasks.get(TRACKING_TASK)
    if tracking is not None and tracking.state == "success" and tracking.duration is not None:
        timings["tracking"] = float(tracking.duration)
    rows = task_latencies(record).values()
    for part, key in (
        ("scheduling", "scheduling"),
        ("queueing", "queueing"),
        ("in_task", "task_overhead"),
    ):
        timings[key] = sum(float(row[part] or 0.0) for row in rows)
    run_s = deployed.finished_at - deployed.triggered_at
    accounted = sum(core.values()) + timings.get("tracking", 0.0)
    accounted += timings["scheduling"] + timings["queueing"] + timings["task_overhead"]
    timings["run_other"] = max(run_s - accounted, 0.0)
    return timings


def _deployment_info(deployed: deployment.DeploymentRun) -> dict[str, Any]:
    settings = deployed.settings
    return {
        "executor": server_name(deployed.executor),
        "deployment": settings.describe(),
        "database": settings.database,
        "postgres_root": str(deployed.postgres_root) if deployed.postgres_root else None,
        "workers": list(deployed.worker_logs) or None,
        "worker_logs": deployed.worker_logs or None,
        "trigger_to_finish_s": deployed.finished_at - deployed.triggered_at,
        "deployment_ready_s": sum(
            deployed.timings.get(k, 0.0) for k in ("services_start", "db_migrate", "airflow_ready")
        ),
    }


def server_name(executor: str) -> str:
    return {"local": "LocalExecutor", "celery": "CeleryExecutor"}.get(executor, executor)


# ------------------------------------------------------------------------------------------
# evidence: what Airflow itself recorded
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Read the run back through Airflow's models (dag run, task instances, XComs) and check
    it and the files its XComs point to."""
    info = result.tool_info
    try:
        if info.get("database") == "postgres":
            record = _read_from_postgres(info)
        else:
            record = metadata.read_run(info["airflow_home"], info["dag_id"], info["run_id"])
    except (KeyError, TypeError, MlopsbenchError):
        return dict.fromkeys(EVIDENCE_KEYS, False)
    data, model, evaluation = (_stage_outputs(record)[stage] for stage in STAGES)
    artifacts = evaluation.get("artifacts") or {}
    history = model.get("history") or []
    expected_state = "success" if result.status == "ok" else "failed"
    return {
        "params": bool(record.conf)
        and all(record.conf.get(k) == v for k, v in result.params.items()),
        "per_epoch_metrics": bool(history) and all("epoch" in row for row in history),
        "final_metrics": "accuracy" in (evaluation.get("metrics") or {}),
        "model_artifact": non_empty_dir(model.get("model_dir")),
        "plots": any(str(p).endswith(".png") and Path(p).is_file() for p in artifacts.values()),
        "lineage": bool(data.get("source")) and bool(data.get("digest")),
        "run_state": record.state == expected_state and bool(record.tasks),
    }


def _read_from_postgres(info: Mapping[str, Any]) -> metadata.DagRunRecord:
    """A deployment's run, read from its PostgreSQL (started again, alone, for the read)."""
    from mlopsbench.support import postgres
    from mlopsbench.tools.airflow.server import DB_NAME

    settings = postgres.PostgresSettings(
        root=Path(info["postgres_root"]), database=DB_NAME, role=DB_NAME
    )
    pg = postgres.start(settings)
    try:
        db_env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("postgresql+psycopg2"), **pg.env()}
        return metadata.read_run(info["airflow_home"], info["dag_id"], info["run_id"], db_env)
    finally:
        postgres.stop(pg)
