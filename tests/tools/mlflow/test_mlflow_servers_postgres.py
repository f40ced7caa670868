"""``mlopsbench server mlflow --backend postgres``: the tracking server on a private PostgreSQL.

The CLI runs as a user runs it (a subprocess on a free port); another tool logs to it with
``--tracking-uri`` (Metaflow's digits flow, through ``mlopsbench run``), and the run is read back
through MLflow's REST API and found in PostgreSQL itself. Stopping PostgreSQL under the server
is a one-line error that stops the server too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from mlopsbench.support import postgres
from mlopsbench.support.net import free_port

START_TIMEOUT_S = 240.0
pytestmark = pytest.mark.skipif(
    not postgres.installed(), reason="PostgreSQL is not installed (apt-get install postgresql)"
)


@pytest.fixture
def service_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path`` when we are not root; as root, a fresh folder under /tmp that the
    ``postgres`` user can enter (pytest's own temporary folders are 0700, root's only)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mlopsbench-mlflow-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tool_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """From MLflow's environment (``<core>/mlopsbench-envs/mlflow``) the CLI finds the other
    tools' environments among its siblings."""
    here = Path(sys.prefix)
    if not os.environ.get("MLOPSBENCH_ENVS") and here.parent.name == "mlopsbench-envs":
        monkeypatch.setenv("MLOPSBENCH_ENVS", str(here.parent))


def _mlflow_client_for_other_tools() -> dict[str, str]:
    """What ``run --tool metaflow --tracking-uri`` gives Metaflow's processes when started from
    the core environment: MLflow's client, from MLflow's environment (this one), after their
    own packages. Started from here, the CLI would not add it (it can import MLflow itself)."""
    from mlopsbench.toolkit import envs

    return envs.with_extra_site(envs.site_packages(Path(sys.prefix)))


def _start(root: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "mlopsbench", "server", "mlflow"),
        *("--backend", "postgres", "--port", str(port), "--root", str(root)),
    ]
    with out.open("wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=root.parent, start_new_session=True,
        )  # fmt: skip


def _wait_healthy(cli: subprocess.Popen[bytes], url: str, out: Path) -> float:
    """Until the server answers /health and the CLI has said so (its last line)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert cli.poll() is None, out.read_text()[-3000:]
        with contextlib.suppress(requests.RequestException):
            healthy = requests.get(f"{url}/health", timeout=2).status_code == 200
            if healthy and "Ctrl-C stops" in out.read_text(errors="replace"):
                return time.perf_counter() - t0
        time.sleep(0.5)
    raise AssertionError(f"{url} not healthy: {out.read_text()[-3000:]}")


def _stop(cli: subprocess.Popen[bytes], members: list[psutil.Process]) -> int:
    if cli.poll() is None:
        cli.send_signal(signal.SIGTERM)
    try:
        code = cli.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(cli.pid, signal.SIGKILL)
        code = cli.wait()
    _, alive = psutil.wait_procs(members, timeout=15)
    alive = [m for m in alive if _running(m)]  # a zombie has exited (its reaper is not ours)
    for member in alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    assert not alive, alive
    return code


def _running(member: psutil.Process) -> bool:
    try:
        return member.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _api(url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.request(method, f"{url}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.capability("mlflow", "postgres_store")
def test_postgres_backed_server_records_a_metaflow_run(
    service_dir: Path, tool_envs: None, tmp_path: Path
) -> None:
    port = free_port()
    root = service_dir / "srv"
    out = service_dir / "cli.out"
    url = f"http://127.0.0.1:{port}"
    cli = _start(root, port, out)
    members: list[psutil.Process] = []
    try:
        healthy_s = _wait_healthy(cli, url, out)
        members = psutil.Process(cli.pid).children(recursive=True)
        text = out.read_text()
        assert "backend store: PostgreSQL 127.0.0.1:" in text
        # PostgreSQL and MLflow listen on 127.0.0.1 only.
        listening = {
            c.laddr.ip
            for m in members
            for c in m.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}

        run_out = tmp_path / "runs"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "mlopsbench", "run", "digits", "--tool", "metaflow"),
                *("--model", "simple", "--epochs", "1", "--threshold", "0.5"),
                *("--tracking-uri", url, "--out", str(run_out)),
            ],
            env={**os.environ, "OMP_NUM_THREADS": "1", **_mlflow_client_for_other_tools()},
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

        # Read back through MLflow's REST API.
        experiment = _api(
            url, "GET", "experiments/get-by-name", params={"experiment_name": "mlopsbench-digits"}
        )["experiment"]
        runs = _api(
            url, "POST", "runs/search", json={"experiment_ids": [experiment["experiment_id"]]}
        )["runs"]
        assert len(runs) == 1
        run = runs[0]
        assert run["info"]["status"] == "FINISHED"
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert tags["metaflow.pathspec"].startswith("DigitsFlow/")
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["model"] == "simple" and params["epochs"] == "1"
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["accuracy"] >= 0.5
        history = _api(
            url, "GET", "metrics/get-history",
            params={"run_id": run["info"]["run_id"], "metric_key": "test_accuracy"},
        )["metrics"]  # fmt: skip
        assert len(history) == 1
        # ...and the store is PostgreSQL: no SQLite file, the run is in its tables.
        assert not (root / "mlflow.db").exists()
        assert _psql(
            root, f"SELECT status FROM runs WHERE run_uuid = '{run['info']['run_id']}'"
        ) == ("FINISHED")
        assert list((root / "artifacts").rglob("model.safetensors"))
        print(f"MLflow on PostgreSQL healthy in {healthy_s:.1f} s; Metaflow run recorded")
    finally:
        code = _stop(cli, members)
    assert code == 128 + signal.SIGTERM, out.read_text()[-3000:]
    assert "Traceback" not in out.read_text()
    assert _port_closed(port)


def _psql(root: Path, sql: str) -> str:
    """Over the cluster's private socket, as its superuser (local connections are trusted)."""
    settings = postgres.PostgresSettings(root=root / "postgres", database="mlflow", role="mlflow")
    port = _port_of(settings)
    done = subprocess.run(
        [
            str(postgres.find_bindir() / "psql"),
            *("-h", str(settings.socket_dir), "-p", str(port), "-U", postgres.SUPERUSER),
            *("-d", "mlflow", "-tAX", "-c", sql),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _port_of(settings: postgres.PostgresSettings) -> int:
    """The running server's port: line 4 of ``postmaster.pid``."""
    return int((settings.data_dir / "postmaster.pid").read_text().splitlines()[3])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stopping_postgres_is_one_line_and_stops_the_server(service_dir: Path) -> None:
    port = free_port()
    root = service_dir / "srv"
    out = service_dir / "cli.out"
    cli = _start(root, port, out)
    members: list[psutil.Process] = []
    try:
        _wait_healthy(cli, f"http://127.0.0.1:{port}", out)
        members = psutil.Process(cli.pid).children(recursive=True)
        postmaster = next(m for m in psutil.Process(cli.pid).children() if m.name() == "postgres")
        postmaster.send_signal(signal.SIGINT)  # `pg_ctl stop`'s fast shutdown
        assert cli.wait(timeout=60) == 1
    finally:
        _stop(cli, members)
    text = out.read_text()
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    # Seen gone, or seen going (refusing connections): either way one line naming it.
    assert len(errors) == 1 and re.fullmatch(
        r"error: PostgreSQL \(the backend store\) (exited with code 0|refuses connections "
        r"\(shutting down\)): LOG: received fast shutdown request",
        errors[0],
    ), text
    assert "Traceback" not in text and _port_closed(port)
