"""Start, health-check and stop ``mlflow server`` and ``mlflow models serve`` (CLI and tests).

Both run in their own process group on 127.0.0.1, so stopping kills every worker they spawned
(``mlflow server`` starts a uvicorn tree; an orphaned worker would keep the port). Output goes
to a log file whose last lines explain a failed start in the error message.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlopsbench.errors import ConfigError, ServerError

LOCALHOST = "127.0.0.1"
TRACKING_READY_TIMEOUT_S = 120.0  # ~14 s on a quiet machine, far more with 8 jobs on 2 cores
SERVE_READY_TIMEOUT_S = 120.0


@dataclass
class ManagedProcess:
    """A server we started: its process (group leader), base URL and log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_reason(self) -> str:
        """The most telling log line: the last exception line, else the last line."""
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        lines = [ln for ln in lines if ln]
        errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
        return (errors or lines or [""])[-1][:300]


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def check_host(host: str) -> None:
    """Servers here bind loopback only; anything else must be an explicit, deliberate choice."""
    if host not in (LOCALHOST, "localhost", "::1"):
        raise ConfigError(
            f"refusing to bind {host!r}: mlopsbench servers listen on 127.0.0.1 only "
            "(put a reverse proxy in front to expose them)"
        )


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


def spawn(
    name: str, args: list[str], url: str, log_path: Path, env: Mapping[str, str]
) -> ManagedProcess:
    """Start ``args`` as a new session (own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    return ManagedProcess(name, process, url, log_path)


def wait_healthy(proc: ManagedProcess, path: str, timeout_s: float) -> None:
    """Poll ``url + path`` until it answers 200; stop the server and raise if it never does."""
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            tail = proc.log_reason()
            stop(proc)
            raise ServerError(
                f"{proc.name} exited with code {proc.process.returncode} before it was healthy"
                + (f": {tail}" if tail else f" (log: {proc.log_path})")
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(proc.url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    stop(proc)
    raise ServerError(f"{proc.name} not healthy after {timeout_s:.0f} s (log: {proc.log_path})")


def stop(proc: ManagedProcess, timeout_s: float = 10.0) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left after ``timeout_s``."""
    pgid = proc.process.pid  # the leader of its own session: its pid is the group id
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if _group_gone(proc, pgid, wait_s):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.process.wait(timeout=1)


def _group_gone(proc: ManagedProcess, pgid: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        proc.process.poll()  # reap the leader so killpg sees only the remaining members
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------------------------------
# mlflow server
# ------------------------------------------------------------------------------------------


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
    if port_in_use(port, LOCALHOST):
        raise ServerError(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    root = (root or default_server_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    backend = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = artifacts_destination or str(root / "artifacts")
    args = [
        *_mlflow_cli(),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        artifacts,
    ]
    proc = spawn("mlflow server", args, f"http://{host}:{port}", root / "server.log", _server_env())
    wait_healthy(proc, "/health", timeout_s)
    return proc


# ------------------------------------------------------------------------------------------
# mlflow models serve
# ------------------------------------------------------------------------------------------


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
    if port_in_use(port, LOCALHOST):
        raise ServerError(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    args = [
        *_mlflow_cli(),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        host,
        "-p",
        str(port),
        "--workers",
        "1",
    ]
    env = _server_env({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri})
    log_dir = (log_dir or Path("runs") / "mlflow-serve").resolve()
    proc = spawn("mlflow models serve", args, f"http://{host}:{port}", log_dir / "serve.log", env)
    wait_healthy(proc, "/ping", timeout_s)
    return proc


@contextlib.contextmanager
def running(proc: ManagedProcess) -> Iterator[ManagedProcess]:
    """Stop the server however the block ends (also on SIGTERM, turned into SystemExit)."""
    previous = signal.getsignal(signal.SIGTERM)

    def _on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    in_main = _in_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield proc
    finally:
        stop(proc)
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def wait_forever(proc: ManagedProcess) -> int:
    """Block until the server exits by itself (returns its code) or Ctrl-C/SIGTERM."""
    while proc.alive():
        time.sleep(0.5)
    return int(proc.process.returncode or 0)
