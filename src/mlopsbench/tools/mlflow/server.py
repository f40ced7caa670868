"""Start ``mlflow server`` and ``mlflow models serve`` healthy, on loopback (CLI, probe, tests).

Both run in their own process group on 127.0.0.1 (:func:`mlopsbench.support.processes.spawn`),
so stopping one kills every worker it spawned (``mlflow server`` starts a uvicorn tree; an
orphaned worker would keep the port). Output goes to a log file whose most telling line explains
a failed start in the error message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mlopsbench.support.net import LOCALHOST, check_free, check_host
from mlopsbench.support.processes import ManagedProcess, spawn, wait_healthy

TRACKING_READY_TIMEOUT_S = 120.0  # ~14 s on a quiet machine, far more with 8 jobs on 2 cores
SERVE_READY_TIMEOUT_S = 120.0


def default_server_root() -> Path:
    return Path("runs") / "mlflow-server"


def start_tracking_server(
    port: int,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    host: str = LOCALHOST,
    root: Path | None = None,
    timeout_s: float = TRACKING_READY_TIMEOUT_S,
) -> ManagedProcess:
    """``mlflow server`` with SQLite + artifact folder under ``root`` unless given; waits healthy."""
    check_host(host)
    check_free(port)
    root = (root or default_server_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    args = [
        *_mlflow_cli(),
        "server",
        *("--host", host, "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"),
        *("--artifacts-destination", artifacts_destination or str(root / "artifacts")),
    ]
    proc = spawn("mlflow server", args, f"http://{host}:{port}", root / "server.log", _server_env())
    wait_healthy(proc, "/health", timeout_s)
    return proc


def start_model_server(
    model_uri: str,
    port: int,
    tracking_uri: str,
    host: str = LOCALHOST,
    log_dir: Path | None = None,
    timeout_s: float = SERVE_READY_TIMEOUT_S,
) -> ManagedProcess:
    """``mlflow models serve --env-manager local`` (no virtualenv / CUDA torch download)."""
    check_host(host)
    check_free(port)
    args = [
        *_mlflow_cli(),
        *("models", "serve", "-m", model_uri, "--env-manager", "local"),
        *("-h", host, "-p", str(port), "--workers", "1"),
    ]
    env = _server_env({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri})
    log_dir = (log_dir or Path("runs") / "mlflow-serve").resolve()
    proc = spawn("mlflow models serve", args, f"http://{host}:{port}", log_dir / "serve.log", env)
    wait_healthy(proc, "/ping", timeout_s)
    return proc


def _mlflow_cli() -> list[str]:
    return [sys.executable, "-m", "mlflow"]


def _server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "1")
    # Without this, the server forks a job-runner tree (~10 processes instead of 2).
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # The servers exec helpers (uvicorn) by name: make this interpreter's scripts findable
    # even when the virtualenv is not activated.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")]) if env.get("PATH") else bindir
    env.update(extra or {})
    return env
