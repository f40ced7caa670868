"""Start ``mlflow server`` and ``mlflow models serve`` healthy, on loopback (CLI, probe, tests).

Both run in their own process group on 127.0.0.1 (:func:`mlopsbench.support.processes.spawn`),
so stopping one kills every worker it spawned (``mlflow server`` starts a uvicorn tree; an
orphaned worker would keep the port). Output goes to a log file whose most telling line explains
a failed start in the error message.

``backend="postgres"``: the backend store is a private PostgreSQL under ``<root>/postgres``
(:mod:`mlopsbench.support.postgres`: its own port on 127.0.0.1, a password generated per start
and handed to the server as ``PGPASSWORD``, so the store URI carries none); artifacts stay in a
folder. :class:`TrackingServer` holds both; :func:`stop_tracking_server` stops MLflow first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support import postgres
from mlopsbench.support.net import LOCALHOST, check_free, check_host
from mlopsbench.support.processes import ManagedProcess, spawn, stop, wait_healthy

TRACKING_READY_TIMEOUT_S = 120.0  # ~14 s on a quiet machine, far more with 8 jobs on 2 cores
SERVE_READY_TIMEOUT_S = 120.0
BACKENDS = ("sqlite", "postgres")
PG_NAME = "mlflow"  # database and role in the private PostgreSQL


def default_server_root() -> Path:
    return Path("runs") / "mlflow-server"


def start_tracking_server(
    port: int,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
    host: str = LOCALHOST,
    root: Path | None = None,
    timeout_s: float = TRACKING_READY_TIMEOUT_S,
    extra_env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """``mlflow server`` with SQLite + artifact folder under ``root`` unless given; waits healthy.

    ``extra_env``: for the server only (the PostgreSQL password of a ``postgresql://`` store)."""
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
    env = _server_env(extra_env)
    proc = spawn("mlflow server", args, f"http://{host}:{port}", root / "server.log", env)
    wait_healthy(proc, "/health", timeout_s)
    return proc


@dataclass
class TrackingServer:
    """``mlflow server`` and, with the PostgreSQL backend, the database it stores runs in."""

    mlflow: ManagedProcess
    postgres: postgres.Postgres | None = None
    backend_store_uri: str = ""
    pg_refusals: int = 0  # checks in a row that found PostgreSQL refusing connections

    @property
    def url(self) -> str:
        return self.mlflow.url

    def check(self) -> None:
        """A one-line ServerError when the database or the server is gone."""
        pg = self.postgres
        if pg is not None and not pg.alive():
            code = pg.proc.process.returncode
            how = (
                f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
            )
            raise ServerError(
                f"PostgreSQL (the backend store) {how}: {pg.reason() or pg.proc.log_path}"
            )
        if pg is not None:
            # A smart shutdown (SIGTERM) keeps the postmaster alive but refuses connections.
            self.pg_refusals = 0 if pg.accepting() else self.pg_refusals + 1
            if self.pg_refusals >= 2:
                raise ServerError(
                    "PostgreSQL (the backend store) refuses connections (shutting down): "
                    f"{pg.reason() or pg.proc.log_path}"
                )
        if not self.mlflow.alive():
            code = self.mlflow.process.returncode
            raise ServerError(
                f"mlflow server exited with code {code}: "
                f"{self.mlflow.log_reason() or self.mlflow.log_path}"
            )


def start_backed_tracking_server(
    port: int,
    backend: str = "sqlite",
    artifacts_destination: str | None = None,
    host: str = LOCALHOST,
    root: Path | None = None,
    timeout_s: float = TRACKING_READY_TIMEOUT_S,
) -> TrackingServer:
    """``mlflow server`` on a SQLite file or a private PostgreSQL (``backend``), both under
    ``root``; waits until healthy and stops what it started if anything fails."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "sqlite":
        return TrackingServer(
            start_tracking_server(port, None, artifacts_destination, host, root, timeout_s)
        )
    check_host(host)
    check_free(port)
    root = (root or default_server_root()).resolve()
    pg = postgres.start(
        postgres.PostgresSettings(root=root / "postgres", database=PG_NAME, role=PG_NAME)
    )
    try:
        uri = pg.url("postgresql+psycopg2")  # SQLAlchemy 2.1 would pick psycopg 3
        proc = start_tracking_server(
            port, uri, artifacts_destination, host, root, timeout_s, extra_env=pg.env()
        )
    except BaseException:
        postgres.stop(pg)
        raise
    return TrackingServer(proc, pg, uri)


def stop_tracking_server(server: TrackingServer) -> None:
    """MLflow first (it holds connections), then its database."""
    stop(server.mlflow)
    if server.postgres is not None:
        postgres.stop(server.postgres)


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
