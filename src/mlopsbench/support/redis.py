"""A private Redis for one server (the Celery broker): 127.0.0.1, its own port, a password.

``redis-server`` runs in its own process group with a configuration written at every start
under ``<root>`` (mode 0600: it holds the password, generated per start): bound to 127.0.0.1
with ``protected-mode yes``, no persistence (no RDB snapshots, no AOF: queued messages live as
long as the server does). Clients connect with :meth:`Redis.url`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support.logs import last_line
from mlopsbench.support.net import LOCALHOST, check_free, free_port, wait_until
from mlopsbench.support.processes import ManagedProcess, spawn, stop_group, stopped_on_interrupt

READY_TIMEOUT_S = 30.0
CONFIG_FILE = "redis.conf"


@dataclass(frozen=True)
class RedisSettings:
    root: Path  # the configuration, the log and Redis' working folder
    port: int = 0  # 0: a free loopback port, picked at start

    @property
    def log_path(self) -> Path:
        return self.root.resolve() / "redis.log"


@dataclass
class Redis:
    settings: RedisSettings
    proc: ManagedProcess
    port: int
    password: str
    ready_s: float = 0.0

    def url(self, db: int = 0) -> str:
        """``redis://:password@127.0.0.1:port/db`` (keep it in an environment variable)."""
        return f"redis://:{self.password}@{LOCALHOST}:{self.port}/{db}"

    def alive(self) -> bool:
        return self.proc.alive()

    def reason(self) -> str:
        return server_reason(self.proc.log_path)


def find_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError(
            "Redis is not installed (no redis-server on PATH): apt-get install redis-server"
        )
    return found


def installed() -> bool:
    return shutil.which("redis-server") is not None


def start(settings: RedisSettings, timeout_s: float = READY_TIMEOUT_S) -> Redis:
    """Start ``redis-server`` and return once it answers an authenticated PING."""
    executable = find_server()
    t0 = time.perf_counter()
    root = settings.root.resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create Redis folder {root}: {exc.strerror}") from None
    port = settings.port or free_port()
    check_free(port, "the Redis port")
    password = secrets.token_urlsafe(24)
    config = _write_config(root, port, password)
    proc = spawn(
        "Redis", [executable, str(config)], f"redis://{LOCALHOST}:{port}", settings.log_path,
        {k: v for k, v in os.environ.items() if k in ("PATH", "TZ")}, cwd=root,
    )  # fmt: skip
    with stopped_on_interrupt(proc, timeout_s=5.0):
        ready = wait_until(lambda: ping(port, password), timeout_s, alive=proc.alive, poll_s=0.1)
    if not ready:
        alive = proc.alive()
        stop_group(proc.process.pid, leader=proc.process, timeout_s=5.0)
        reason = last_line(_read(settings.log_path)) or "no output"
        if not alive:
            raise ServerError(
                f"Redis exited with code {proc.process.returncode} before it was ready: "
                f"{reason} (log: {settings.log_path})"
            )
        raise ServerError(f"Redis not ready after {timeout_s:.0f} s (log: {settings.log_path})")
    return Redis(settings, proc, port, password, time.perf_counter() - t0)


def stop(redis: Redis, timeout_s: float = 10.0) -> None:
    stop_group(redis.proc.process.pid, leader=redis.proc.process, timeout_s=timeout_s)


def _write_config(root: Path, port: int, password: str) -> Path:
    path = root / CONFIG_FILE
    text = "\n".join(
        [
            "# written by mlopsbench at every start (holds this start's password)",
            f"bind {LOCALHOST}",
            f"port {port}",
            "protected-mode yes",
            f"requirepass {password}",
            'save ""',
            "appendonly no",
            f"dir {root}",
            "daemonize no",
            'logfile ""',
            "",
        ]
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def ping(port: int, password: str, timeout_s: float = 1.0) -> bool:
    """True when Redis on 127.0.0.1:port accepts the password and answers PONG."""
    request = _command("AUTH", password) + _command("PING")
    try:
        with socket.create_connection((LOCALHOST, port), timeout=timeout_s) as sock:
            sock.sendall(request)
            answer = b""
            deadline = time.monotonic() + timeout_s
            while answer.count(b"\r\n") < 2 and time.monotonic() < deadline:
                chunk = sock.recv(256)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return False
    return answer == b"+OK\r\n+PONG\r\n"


def _command(*parts: str) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def server_reason(log_path: Path, limit: int = 300) -> str:
    """The telling line of a Redis log: its last warning (``#``), else its last line."""
    lines = [line.strip() for line in _read(log_path).splitlines() if line.strip()]
    warnings = [line for line in lines if " # " in line]
    line = (warnings or lines or [""])[-1]
    return line.split(" # ", 1)[-1][:limit]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
