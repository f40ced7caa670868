"""A real Airflow deployment on 127.0.0.1 (api-server, scheduler, dag-processor) runs the DAG."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.errors import ServerError
from mlopsbench.support.net import port_in_use
from mlopsbench.tools.airflow import common, metadata, server
from mlopsbench.tools.airflow.pipeline import dag_support

DIGITS = common.dag_id("digits")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(480)
@pytest.mark.capability("airflow", "remote_trigger", "typed_parameters")
def test_server_runs_the_digits_dag_through_the_rest_api(
    tmp_path: Path, quiet_threads: None, record_property: Callable[[str, object], None]
) -> None:
    settings = server.ServerSettings(home=tmp_path / "home", port=_free_port())
    t0 = time.perf_counter()
    airflow = server.start(settings)
    try:
        server.wait_ready(airflow, timeout_s=240)
        startup_s = time.perf_counter() - t0
        client = airflow.client()
        # Listening on loopback only, and the login is the generated password.
        assert airflow.url.startswith("http://127.0.0.1:")
        with pytest.raises(ServerError, match="HTTP 401"):
            server.ApiClient(airflow.url, server.USERNAME, "wrong-password").token()
        # The DAG's params validate a trigger's conf: nothing is queued for a bad one.
        with pytest.raises(ServerError, match="HTTP 400"):
            client.trigger(DIGITS, {"epochs": "many"})

        conf = {"model": "simple", "epochs": 1, "threshold": 0.5, "data_test_fraction": 0.1}
        t1 = time.perf_counter()
        run_id = client.trigger(DIGITS, conf)
        state = client.wait_for_run(DIGITS, run_id, timeout_s=300, poll_s=0.5)
        latency_s = time.perf_counter() - t1
        assert state == "success", client.task_states(DIGITS, run_id)

        states = client.task_states(DIGITS, run_id)
        assert states["quality_gate"] == "success" and states["log_to_mlflow"] == "skipped"
        evaluation = client.xcom(DIGITS, run_id, "evaluate_model")
        assert evaluation["gate"]["passed"] and evaluation["metrics"]["accuracy"] >= 0.5
        folder = dag_support.run_folder(settings.artifacts, DIGITS, run_id)
        assert json.loads((folder / "metrics.json").read_text()) == evaluation["metrics"]
        record = metadata.read_run(settings.home, DIGITS, run_id)
        assert record.state == "success" and record.conf["model"] == "simple"
        # The success alert comes from the DAG-level callback, which Airflow 3 runs in the DAG
        # processor (the scheduler only queues it): wait for it, bounded.
        alerts_log = settings.artifacts / "alerts.jsonl"
        deadline = time.monotonic() + 90
        while not _events(alerts_log) and time.monotonic() < deadline:
            time.sleep(0.5)
        callback_s = time.perf_counter() - t1 - latency_s
        assert _events(alerts_log) == ["dag_succeeded"]
        record_property("airflow_success_callback_delay_s", round(callback_s, 1))
        record_property("airflow_server_startup_s", round(startup_s, 1))
        record_property("airflow_trigger_to_success_s", round(latency_s, 1))
        print(
            f"server startup {startup_s:.1f} s (db migrate {airflow.migrate_s:.1f} s), "
            f"trigger-to-success {latency_s:.1f} s, success alert after {callback_s:.1f} s more"
        )
    finally:
        server.stop(airflow)
    assert all(process.poll() is not None for process in airflow.processes.values())
    assert not port_in_use(settings.port)  # nothing left listening


def _events(path: Path) -> list[str]:
    return [a["details"]["event"] for a in metadata.read_alerts(path)]


def test_busy_port_is_a_one_line_server_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start(server.ServerSettings(home=tmp_path / "home", port=port))
    assert not (tmp_path / "home" / "airflow.db").exists()  # failed before any work


def test_admin_password_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = server.ServerSettings(home=tmp_path / "home", port=_free_port())
    first = server.prepare_home(settings)
    assert len(first) >= 16 and server.prepare_home(settings) == first
    path = settings.home / server.PASSWORDS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    env = server.server_env(settings)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{settings.url}/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] not in path.read_text()


def test_cli_reports_a_busy_port_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        result = CliRunner().invoke(
            app, ["server", "airflow", "--port", str(port), "--home", str(tmp_path / "home")]
        )
    assert result.exit_code == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.output
