"""``mlopsbench server mlflow`` and ``serve mlflow`` as a user runs them: real processes, real HTTP.

Each server test starts the CLI in a subprocess on a free port, talks to it over HTTP, then
stops it the way a user does (SIGTERM / Ctrl-C) and checks that no worker keeps the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import Store
from mlopsbench import tracking
from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.result import RunResult
from mlopsbench.support.net import free_port
from mlopsbench.tools.mlflow import server

START_TIMEOUT_S = 180.0


def _cli(
    *args: str, cwd: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlopsbench", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # our own signals only reach it when we send them
        preexec_fn=preexec_fn,
    )


def _wait_http(proc: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"CLI exited with {proc.returncode} before {url} answered: {out}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    _stop_cli(proc, signal.SIGTERM)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s")


def _stop_cli(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return proc.returncode, out


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.capability("mlflow", "mlflow_tracking")
def test_tracking_server_logs_over_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from mlopsbench.usecases.digits.models import build_model
    from mlopsbench.usecases.digits.storage import save_model

    port = free_port()
    root = tmp_path / "srv"
    cli = _cli(
        "server",
        "mlflow",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(cli, f"{url}/health")
        curve = tmp_path / "training_curve.png"
        curve.write_bytes(b"\x89PNG\r\n\x1a\n")  # the upload path is what is under test
        ids = tracking.log_run_to_mlflow(
            url,
            tool="plain",
            usecase="digits",
            run_name="over-http",
            params={"model": "simple", "epochs": 2},
            metrics={"accuracy": 0.75},
            history=[{"epoch": 1, "test_accuracy": 0.5}, {"epoch": 2, "test_accuracy": 0.75}],
            artifacts={"training_curve": str(curve)},
            model_dir=str(save_model(build_model("simple"), "simple", tmp_path / "model")),
            dataset={"source": "sklearn:load_digits", "digest": "abc123", "n_test": 360},
        )
        client = MlflowClient(tracking_uri=url)
        run = client.get_run(ids["run_id"])
        assert run.data.params == {"model": "simple", "epochs": "2"}
        assert len(client.get_metric_history(ids["run_id"], "test_accuracy")) == 2
        assert [a.path for a in client.list_artifacts(ids["run_id"], "plots")] == [
            "plots/training_curve.png"
        ]
        assert run.inputs.dataset_inputs[0].dataset.digest == "abc123"
        # The server proxies artifacts into its own folder (the client never writes there).
        assert list((root / "artifacts").rglob("training_curve.png"))
        assert list((root / "artifacts").rglob("model.safetensors"))
    finally:
        code, out = _stop_cli(cli, signal.SIGTERM)
    assert f"MLflow UI: {url}" in out.replace("\n", " ")
    assert code == 128 + signal.SIGTERM and "Traceback" not in out
    deadline = time.monotonic() + 15
    while not _port_closed(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _port_closed(port), "a server worker survived the CLI's exit"


@pytest.mark.slow
@pytest.mark.capability("mlflow", "mlflow_registry")
def test_serve_champion_over_rest_matches_in_process(
    passed_run: RunResult,
    store: Store,
    tmp_path: Path,
    as_in_a_terminal: Callable[[], None],
) -> None:
    from mlopsbench.usecases.digits.evaluate import predict
    from mlopsbench.usecases.digits.storage import load_model

    port = free_port()
    cli = _cli(
        "serve",
        "mlflow",
        "--model",
        "digits-simple@champion",
        "--port",
        str(port),
        "--tracking-uri",
        store.uri,
        "--out",
        str(tmp_path),
        cwd=tmp_path,
        preexec_fn=as_in_a_terminal,  # stopped with SIGINT below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(cli, f"{url}/ping")
        images = np.load(passed_run.artifacts["data"])["x_test"][:50]
        response = requests.post(f"{url}/invocations", json={"inputs": images.tolist()}, timeout=60)
        assert response.status_code == 200, response.text
        served = np.asarray(response.json()["predictions"])
        expected = predict(load_model(passed_run.artifacts["model"]), images)
        assert np.array_equal(served, expected)
        bad = requests.post(f"{url}/invocations", json={"inputs": [[1, 2, 3]]}, timeout=60)
        assert bad.status_code == 400  # the signature is enforced at the REST boundary
    finally:
        code, out = _stop_cli(cli, signal.SIGINT)
    assert code == 130 and "interrupted" in out
    deadline = time.monotonic() + 15
    while not _port_closed(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _port_closed(port)


def test_serve_unknown_alias_is_one_line(passed_run: RunResult, store: Store) -> None:
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    result = CliRunner().invoke(
        app,
        ["serve", "mlflow", "--model", "digits-simple@nope", "--tracking-uri", store.uri],
    )
    assert result.exit_code == 2
    assert "registered model 'digits-simple' has no alias 'nope'" in result.output
    assert "Traceback" not in result.output


def test_run_cli_wrong_scheme_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    result = CliRunner().invoke(
        app,
        ["run", "digits", "--tool", "mlflow", "--tracking-uri", "ftp://x", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unsupported MLflow tracking URI scheme 'ftp'" in lines[0]


def test_servers_refuse_public_interfaces_and_busy_ports(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 only"):
        server.start_tracking_server(free_port(), host="0.0.0.0", root=tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match="already in use"):
            server.start_tracking_server(port, root=tmp_path)
        with pytest.raises(ServerError, match="already in use"):
            server.start_model_server("models:/x/1", port, "sqlite:///x.db", log_dir=tmp_path)


@pytest.mark.slow
def test_failed_start_reports_the_reason(tmp_path: Path) -> None:
    # A backend URI the server cannot open: it exits, and we say why in one line.
    with pytest.raises(ServerError) as err:
        server.start_tracking_server(
            free_port(), backend_store_uri="bogus://nowhere", root=tmp_path, timeout_s=120
        )
    message = str(err.value)
    assert "exited with code" in message and "\n" not in message
