"""The Airflow rows on a deployment: LocalExecutor and Celery workers, triggered over REST.

``RunRequest.options["executor"]`` (``compare --airflow-executor``) runs the use case's DAG on a
local deployment with PostgreSQL instead of ``dag.test()``; the record carries what the
executor cost per task instance (scheduling, queueing) and where each one ran, and the
evidence is read back from the deployment's PostgreSQL after everything was stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.result import EVIDENCE_KEYS, RunRequest
from mlopsbench.support import postgres, redis
from mlopsbench.tools.airflow import adapter
from mlopsbench.usecases.digits.config import DigitsConfig

needs_services = pytest.mark.skipif(
    not (postgres.installed() and redis.installed()),
    reason="PostgreSQL and Redis are not installed (apt-get install postgresql redis-server)",
)


def _check_latencies(info: dict) -> None:
    rows = info["task_latency_s"]
    assert set(rows) >= {"prepare_data", "build_model", "evaluate_model", "quality_gate"}
    for task, row in rows.items():
        assert row["scheduling"] is not None and row["scheduling"] >= 0, task
        assert row["queueing"] is not None and row["queueing"] >= 0, task
        assert row["in_task"] >= 0 and row["total"] >= row["in_task"], task
    assert info["task_overhead_median_s"] is not None


@pytest.mark.slow
@needs_services
@pytest.mark.timeout(480)
@pytest.mark.capability("airflow", "remote_trigger", "postgres_store")
def test_adapter_runs_the_dag_on_a_local_executor_deployment(
    service_dir: Path, quiet_threads: None
) -> None:
    config = DigitsConfig(model="simple", epochs=1, threshold=0.5)
    request = RunRequest(
        usecase="digits", config=config, out_dir=service_dir / "run",
        options={"executor": "local"},
    )  # fmt: skip
    result = adapter.run(request)
    assert result.status == "ok", result.error
    info = result.tool_info
    assert info["executor"] == "LocalExecutor" and info["database"] == "postgres"
    assert info["deployment"] == "LocalExecutor, PostgreSQL"
    assert set(info["task_states"].values()) == {"success", "skipped"}  # no MLflow URI
    assert all(host and "@" not in host for host in info["hosts"].values())  # no Celery worker
    _check_latencies(info)
    for key in ("services_start", "db_migrate", "airflow_ready", "scheduling", "queueing",
                "task_overhead", "run_other", "readback", "deployment_stop", "data", "train",
                "evaluate"):  # fmt: skip
        assert result.timings[key] >= 0.0, key
    # Everything was stopped; the evidence starts the deployment's PostgreSQL again to read.
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, True)
    assert not list(Path(info["postgres_root"]).glob("data/postmaster.pid"))


@pytest.mark.slow
@needs_services
@pytest.mark.timeout(600)
def test_compare_runs_the_airflow_rows_on_celery_workers(
    service_dir: Path, quiet_threads: None
) -> None:
    out = service_dir / "cmp"
    result = CliRunner().invoke(
        app,
        [
            *("compare", "--tools", "airflow", "--models", "simple", "--epochs", "1"),
            *("--set", "threshold=0.5", "--airflow-executor", "celery", "--out", str(out)),
        ],
    )
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert result.exit_code == 0, [r.get("error") for r in rows if r["kind"] == "run"]
    meta = next(r for r in rows if r["kind"] == "meta")
    assert meta["tool_options"] == {"airflow": {"executor": "celery"}}
    run = next(r for r in rows if r["kind"] == "run" and r["tool"] == "airflow")
    assert run["status"] == "ok", run.get("error")
    request = json.loads((Path(run["run_dir"]) / "request.json").read_text())
    assert request["options"]["executor"] == "celery"
    info = run["result"]["tool_info"]
    assert info["executor"] == "CeleryExecutor" and info["workers"] == ["celery-1", "celery-2"]
    assert {h.split("@")[0] for h in info["hosts"].values()} <= {"celery-1", "celery-2"}
    assert sum(log["received"] for log in info["worker_logs"].values()) == len(info["hosts"])
    _check_latencies(info)
    assert all(run["evidence"].values()), run["evidence"]
    assert (out / "report.md").is_file()
    # Nothing of the deployment is left running.
    pid_file = Path(info["postgres_root"]) / "data" / "postmaster.pid"
    assert not pid_file.exists()
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _in_run(int(p), out)]


def _in_run(pid: int, out: Path) -> bool:
    """A live process whose command line names the compare folder (a leftover)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return str(out) in cmdline and state != "Z"
