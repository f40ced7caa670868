"""Start ``prefect server start`` healthy on loopback, with its own home (CLI, probe, tests).

The server (API + UI in one process, plus its background services) runs in its own process
group on 127.0.0.1 (:func:`mlopsbench.support.processes.spawn`), so stopping it stops everything
it started. Its home holds the SQLite database and the log; the user's ``~/.prefect`` (profiles,
database) is never read. Runs are recorded against it with ``PREFECT_API_URL=<url>/api``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mlopsbench.support.net import LOCALHOST, check_free, check_host
from mlopsbench.support.processes import ManagedProcess, spawn, wait_healthy
from mlopsbench.tools.prefect.environment import API_URL_ENV, QUIET

READY_TIMEOUT_S = 180.0  # ~15 s on a quiet machine (migrating a new database), more when busy
DATABASE_FILE = "prefect.db"


def default_home() -> Path:
    return Path("runs") / "prefect-server"


def api_url(server: ManagedProcess) -> str:
    """What ``PREFECT_API_URL`` must say for runs to be recorded in this server."""
    return f"{server.url}/api"


def server_env(
    home: Path, host: str, port: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The server's environment: its own home and SQLite database, analytics off, and the
    address the UI calls its API at (Prefect derives it from these settings, not from
    ``--port``: without them the UI looks for the API on port 4200)."""
    env = dict(os.environ if base is None else base)
    env.pop(API_URL_ENV, None)  # the server is the API: it must not look for another
    env.update(QUIET)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / DATABASE_FILE}",
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_API_URL": f"http://{host}:{port}/api",
        }
    )
    # The server execs helpers by name: make this interpreter's scripts findable even when the
    # virtualenv is not activated.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(filter(None, [bindir, env.get("PATH")]))
    return env


def start_server(
    port: int,
    home: Path | None = None,
    host: str = LOCALHOST,
    timeout_s: float = READY_TIMEOUT_S,
) -> ManagedProcess:
    """``prefect server start`` on ``host:port`` (loopback only); returns once /api/health is 200."""
    check_host(host)
    check_free(port)
    home = (home or default_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    args = [
        *(sys.executable, "-m", "prefect", "server", "start"),
        *("--host", host, "--port", str(port), "--analytics-off", "--no-background"),
    ]
    url = f"http://{host}:{port}"
    proc = spawn(
        "prefect server", args, url, home / "server.log", server_env(home, host, port), cwd=home
    )
    wait_healthy(proc, "/api/health", timeout_s)
    return proc
