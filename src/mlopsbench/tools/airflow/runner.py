"""Run a use case as an Airflow DAG with ``dag.test()`` in an isolated Airflow home.

Per run folder: ``airflow_home/`` (SQLite metadata DB, logs), ``artifacts/<dag_id>/<run_id>/``
(everything the tasks write), ``alerts.jsonl`` and ``airflow.log`` (the worker's output). The
DAG runs in a child process (``worker.py``) because Airflow reads its configuration at import;
afterwards task states and XComs are read back from the metadata DB into the common record.

Timings: the core stages (``data``, ``train``/``model``, ``evaluate``) are measured inside the
tasks and carried by XCom; ``import``, ``dag_parse``, ``db_migrate`` and ``dag_test_overhead``
(dag.test time not spent in core calls or MLflow logging) are Airflow's bookkeeping;
``worker_start`` / ``worker_exit`` are the child's interpreter start-up and shutdown, and
``readback`` the DB read.

Options (``RunRequest.options``): ``alert_webhook`` (URL, passed as environment),
``airflow_home`` (reuse a migrated
home: no migration, DB checked instead), ``retries`` and ``retry_delay_s`` (override
default_args), ``timeout_s`` (whole DAG run, default 3600).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError
from mlopsbench.result import (
    EVIDENCE_KEYS,
    RunRequest,
    RunResult,
    StageTimer,
    environment_info,
    now_iso,
    peak_rss_mb,
    write_json_atomic,
)
from mlopsbench.tools.airflow import alerts, common, metadata

CORE_TASKS = {
    "digits": {"prepare_data": "data", "train_model": "train", "evaluate_model": "evaluate"},
    "sentiment": {"prepare_data": "data", "prepare_model": "model", "evaluate_model": "evaluate"},
}
MODEL_TASK = {"digits": "train_model", "sentiment": "prepare_model"}
TRACKING_TASK = "log_to_mlflow"
GATE_TASK = "quality_gate"
_ERRORS = {"ConfigError": ConfigError, "DataError": DataError}


def run(request: RunRequest) -> RunResult:
    if request.usecase not in common.DAG_IDS:
        raise ConfigError(f"unknown use case {request.usecase!r}; choose digits or sentiment")
    timer = StageTimer()
    started = now_iso()
    layout = _Layout.for_request(request)
    dag_id = common.DAG_IDS[request.usecase]
    conf = common.conf_from_config(
        request.config,
        run_root=str(layout.artifact_root),
        mlflow_uri=request.tracking_uri,
    )
    with timer.stage("worker"):
        worker = _run_worker(request, layout, dag_id, conf)
    with timer.stage("readback"):
        record = metadata.read_run(layout.db, dag_id, worker["run_id"])
    return _result(request, layout, worker, record, timer, started)


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
        self.worker_json = out_dir / "airflow_worker.json"
        self.conf_json = out_dir / "airflow_conf.json"

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

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
    write_json_atomic(layout.conf_json, conf)
    layout.worker_json.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "mlopsbench.tools.airflow.worker", "run",
        "--dag-id", dag_id, "--conf", str(layout.conf_json), "--result", str(layout.worker_json),
    ]  # fmt: skip
    if layout.migrate:
        command.append("--migrate")
    env = common.airflow_env(
        layout.home,
        artifact_root=layout.artifact_root,
        alerts_log=layout.alerts_log,
        extra=_option_env(request.options),
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the run's conf says where to log, nothing implicit
    timeout = _float_option(request.options, "timeout_s", 3600.0)
    spawned_at = time.time()
    t0 = time.perf_counter()
    with open(layout.worker_log, "wb") as log_file:
        try:
            done = subprocess.run(
                command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise MlopsbenchError(
                f"Airflow run of {dag_id} did not finish within {timeout:.0f} s "
                f"(log: {layout.worker_log})"
            ) from None
    wall = time.perf_counter() - t0
    exited_at = time.time()
    worker = _read_worker_json(layout, done.returncode)
    worker["wall_s"] = wall
    # Interpreter start-up before main() and shutdown after the result was written.
    worker["start_s"] = max(float(worker.get("started_at", spawned_at)) - spawned_at, 0.0)
    worker["exit_s"] = max(exited_at - float(worker.get("finished_at", exited_at)), 0.0)
    return worker


def _option_env(options: Any) -> dict[str, str]:
    """Options that reach the DAG through its environment, not the run conf.

    The webhook URL is a secret: the conf is stored in the metadata DB and shown in the UI.
    """
    env = {}
    if options.get("alert_webhook"):
        env[common.ENV_ALERT_WEBHOOK] = str(options["alert_webhook"])
    if "retries" in options:
        env[common.ENV_RETRIES] = str(options["retries"])
    if "retry_delay_s" in options:
        env[common.ENV_RETRY_DELAY] = str(options["retry_delay_s"])
    return env


def _float_option(options: Any, key: str, default: float) -> float:
    try:
        return float(options.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"option {key} must be a number, got {options.get(key)!r}") from None


def _read_worker_json(layout: _Layout, returncode: int) -> dict[str, Any]:
    try:
        worker = json.loads(layout.worker_json.read_text())
    except (OSError, ValueError):
        raise MlopsbenchError(
            f"Airflow worker exited with code {returncode} without a result "
            f"({common.last_log_line(layout.worker_log)}; log: {layout.worker_log})"
        ) from None
    if "error" in worker:
        error_class = _ERRORS.get(worker.get("error_type", ""), MlopsbenchError)
        raise error_class(str(worker["error"]).splitlines()[0])
    return worker


# ------------------------------------------------------------------------------------------
# the record
# ------------------------------------------------------------------------------------------


def _result(
    request: RunRequest,
    layout: _Layout,
    worker: dict[str, Any],
    record: metadata.DagRunRecord,
    timer: StageTimer,
    started: str,
) -> RunResult:
    usecase, cfg = request.usecase, request.config
    xcom = record.xcom
    data = xcom.get("prepare_data") or {}
    model = xcom.get(MODEL_TASK[usecase]) or {}
    evaluation = xcom.get("evaluate_model") or {}
    tracked = xcom.get(TRACKING_TASK) or {}
    status, error = _status(record, evaluation, layout.alerts_log)
    timings = _timings(usecase, worker, record, timer)
    model_name = cfg.model if usecase == "digits" else model.get("model_name", cfg.model_label)
    artifacts = {
        **({"model": model["model_dir"]} if "model_dir" in model else {}),
        **({"data": data["data_path"]} if "data_path" in data else {}),
        **(evaluation.get("artifacts") or {}),
        "airflow_db": str(layout.db),
        "alerts_log": str(layout.alerts_log),
        "airflow_log": str(layout.worker_log),
    }
    return RunResult(
        tool="airflow",
        usecase=usecase,
        model=str(model_name),
        params=cfg.to_dict(),
        metrics=evaluation.get("metrics") or {},
        artifacts=artifacts,
        timings=timings,
        wall_time_s=timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status=status,
        error=error,
        gate=evaluation.get("gate"),
        tool_info=_tool_info(layout, worker, record, data, model, tracked),
        history=model.get("history") or [],
        started_at=started,
        environment=environment_info(),
    )


def _status(
    record: metadata.DagRunRecord, evaluation: dict[str, Any], alerts_log: Path
) -> tuple[str, str | None]:
    """ok / gate_failed / failed, with the failing task's own error message (from its alert)."""
    if record.state == "success":
        return "ok", None
    failed = record.failed_tasks()
    gate = evaluation.get("gate") or {}
    if failed == [GATE_TASK] and gate.get("passed") is False:
        from mlopsbench.usecases.common.gate import check_gate

        message = check_gate(
            gate["value"], gate["threshold"], gate.get("metric", "accuracy")
        ).message
        return "gate_failed", message
    if not failed:
        return "failed", f"DAG run {record.run_id} ended in state {record.state}"
    task_id = failed[0]
    return "failed", f"task {task_id} failed: {_task_error(alerts_log, record.run_id, task_id)}"


def _task_error(alerts_log: Path, run_id: str, task_id: str) -> str:
    for alert in reversed(alerts.read_alerts(alerts_log)):
        details = alert.get("details") or {}
        if (
            details.get("event") == "task_failed"
            and details.get("run_id") == run_id
            and details.get("task_id") == task_id
        ):
            return str(details.get("error") or "no error message")
    return "see the task log"


def _timings(
    usecase: str, worker: dict[str, Any], record: metadata.DagRunRecord, timer: StageTimer
) -> dict[str, float]:
    inner = dict(worker.get("timings") or {})
    timings = {k: float(inner[k]) for k in ("import", "dag_parse", "db_migrate") if k in inner}
    in_tasks = 0.0
    for task_id, stage in CORE_TASKS[usecase].items():
        seconds = _xcom_seconds(record, task_id)
        if seconds is not None:
            timings[stage] = seconds
            in_tasks += seconds
    tracking = _xcom_seconds(record, TRACKING_TASK)
    if tracking is not None:
        timings["tracking"] = tracking
        in_tasks += tracking
    dag_test = float(inner.get("dag_test", 0.0))
    timings["dag_test_overhead"] = max(dag_test - in_tasks, 0.0)
    timings["worker_start"] = float(worker.get("start_s", 0.0))
    timings["worker_exit"] = float(worker.get("exit_s", 0.0))
    timings["readback"] = timer.timings.get("readback", 0.0)
    return timings


def _xcom_seconds(record: metadata.DagRunRecord, task_id: str) -> float | None:
    value = record.xcom.get(task_id)
    if isinstance(value, dict) and isinstance(value.get("seconds"), int | float):
        return float(value["seconds"])
    return None


def _tool_info(
    layout: _Layout,
    worker: dict[str, Any],
    record: metadata.DagRunRecord,
    data: dict[str, Any],
    model: dict[str, Any],
    tracked: dict[str, Any],
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "state": record.state,
        "task_states": record.task_states(),
        "try_numbers": {t: r.try_number for t, r in record.tasks.items()},
        "airflow_home": str(layout.home),
        "airflow_db": str(layout.db),
        "artifact_dir": data.get("run_dir")
        or str(common.run_folder(layout.artifact_root, record.dag_id, record.run_id)),
        "alerts_log": str(layout.alerts_log),
        "airflow_version": worker.get("airflow_version"),
        "dataset": {k: v for k, v in data.items() if k not in ("data_path", "run_dir", "seconds")},
        **_overheads(worker, record),
    }
    for key in ("precision", "device"):
        if key in model:
            info[key] = model[key]
    if tracked:
        info["mlflow"] = {k: tracked.get(k) for k in ("run_id", "experiment_id", "model_uri")}
    return info


def _overheads(worker: dict[str, Any], record: metadata.DagRunRecord) -> dict[str, Any]:
    """dag.test's one-off set-up and what each task instance costs around its core call.

    ``dag_test_setup_s``: from calling ``dag.test()`` to the first core call (serialising the
    DAG, creating the run, starting the in-process execution API, the first task's start-up).
    ``task_overhead_s``: task-instance duration minus its core seconds (the first task's value
    includes part of the set-up, so the median leaves it out).
    """
    began = worker.get("dag_test_started_at")
    core_starts = [
        float(v["started_at"])
        for v in record.xcom.values()
        if isinstance(v, dict) and isinstance(v.get("started_at"), int | float)
    ]
    setup = max(min(core_starts) - float(began), 0.0) if core_starts and began else None
    per_task: dict[str, float] = {}
    for task_id, task in sorted(record.tasks.items(), key=lambda item: item[1].start or 0.0):
        if task.duration is not None and task.state == "success":
            seconds = _xcom_seconds(record, task_id) or 0.0
            per_task[task_id] = max(float(task.duration) - seconds, 0.0)
    later = list(per_task.values())[1:]
    median = statistics.median(later) if later else None
    return {
        "dag_test_setup_s": setup,
        "task_overhead_s": per_task,
        "task_overhead_median_s": median,
    }


# ------------------------------------------------------------------------------------------
# evidence: what Airflow itself recorded
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """Check the metadata DB (dag_run, task_instance, xcom) and the files XCom points to."""
    keys = EVIDENCE_KEYS
    info = result.tool_info
    try:
        record = metadata.read_run(info["airflow_db"], info["dag_id"], info["run_id"])
    except (KeyError, MlopsbenchError):
        return dict.fromkeys(keys, False)
    xcom = record.xcom
    data = xcom.get("prepare_data") or {}
    model = xcom.get(MODEL_TASK.get(result.usecase, "")) or {}
    evaluation = xcom.get("evaluate_model") or {}
    artifacts = evaluation.get("artifacts") or {}
    history = model.get("history") or []
    expected_state = "success" if result.status == "ok" else "failed"
    return {
        "params": bool(record.conf)
        and all(record.conf.get(k) == v for k, v in result.params.items()),
        "per_epoch_metrics": bool(history) and all("epoch" in row for row in history),
        "final_metrics": "accuracy" in (evaluation.get("metrics") or {}),
        "model_artifact": _non_empty_dir(model.get("model_dir")),
        "plots": any(str(p).endswith(".png") and Path(p).is_file() for p in artifacts.values()),
        "lineage": bool(data.get("source")) and bool(data.get("digest")),
        "run_state": record.state == expected_state and bool(record.tasks),
    }


def _non_empty_dir(path: Any) -> bool:
    return bool(path) and Path(path).is_dir() and any(Path(path).iterdir())
