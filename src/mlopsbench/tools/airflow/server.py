"""A local Airflow 3 deployment on 127.0.0.1: api-server, scheduler and dag-processor.

Three processes, each leading its own process group (so a stop takes every task process it
forked too), LocalExecutor on SQLite, the simple auth manager with a generated admin password,
the project's DAGs folder. Not ``airflow standalone``: it opens log-server ports 8793/8794 on all
interfaces; here the scheduler runs with ``--skip-serve-logs`` and nothing but the API listens,
on 127.0.0.1.

``start`` / ``wait_ready`` / ``stop`` (or the ``running`` context manager) are what the CLI and
the tests use; ``ApiClient`` talks to the REST API v2 with a JWT from ``/auth/token``.

From ``start`` until ``stop``, SIGTERM and SIGHUP raise ``SystemExit`` in the main thread (like
Ctrl-C raises KeyboardInterrupt), so the caller's ``finally: stop(server)`` runs and every
process group goes: ``kill <pid>`` or a closed terminal leaves no api-server, scheduler,
dag-processor or task process holding the port. A SIGHUP ignored at start (``nohup``) stays
ignored, and ``stop`` itself is not interrupted by them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support.logs import log_reason
from mlopsbench.support.net import check_free, wait_until
from mlopsbench.support.processes import (
    ManagedProcess,
    group_gone,
    signal_group,
    signals_ignored,
    spawn,
    stop_group,
    stop_on_signals,
)
from mlopsbench.tools.airflow.common import DAGS_FOLDER, airflow_env, all_dag_ids

HOST = "127.0.0.1"
USERNAME = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
COMPONENTS = {
    "api-server": ["api-server", "-H", HOST, "-p", "{port}", "-w", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
API_SERVER = "api-server"
FINISHED = ("success", "failed")


@dataclass(frozen=True)
class ServerSettings:
    home: Path
    port: int = 8080
    dags_folder: Path = DAGS_FOLDER
    artifact_root: Path | None = None  # default: <home>/artifacts
    parallelism: int = 2  # task slots of the LocalExecutor

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def artifacts(self) -> Path:
        return (self.artifact_root or self.home / "artifacts").resolve()


@dataclass
class AirflowServer:
    settings: ServerSettings
    password: str
    components: dict[str, ManagedProcess] = field(default_factory=dict)
    log_dir: Path = Path()
    migrate_s: float = 0.0
    started_at: float = 0.0  # perf_counter() when the processes were launched
    # SIGTERM/SIGHUP -> SystemExit from start() on; stop() closes it, restoring the handlers.
    signals: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: component.process for name, component in self.components.items()}

    def client(self, timeout_s: float = 30.0) -> ApiClient:
        return ApiClient(self.url, USERNAME, self.password, timeout_s)


def default_home() -> Path:
    return Path.cwd() / "runs" / "airflow"


def airflow_executable() -> str:
    """The ``airflow`` script next to this interpreter (the venv's), else the one on PATH."""
    import sys

    candidate = Path(sys.executable).with_name("airflow")
    found = str(candidate) if candidate.is_file() else shutil.which("airflow")
    if not found:
        raise ServerError("the `airflow` command is not installed in this environment")
    return found


# ------------------------------------------------------------------------------------------
# start / wait / stop
# ------------------------------------------------------------------------------------------


def prepare_home(settings: ServerSettings) -> str:
    """Create the home and the admin password (kept across restarts, file mode 0600)."""
    home = settings.home.resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        settings.artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create Airflow home {home}: {exc.strerror}") from None
    path = home / PASSWORDS_FILE
    try:
        password = json.loads(path.read_text()).get(USERNAME)
    except (OSError, ValueError, AttributeError):
        password = None
    if not password:
        password = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({USERNAME: password}, handle)
    return str(password)


def server_env(settings: ServerSettings) -> dict[str, str]:
    """One environment for the three processes (they must share the JWT secret)."""
    home = settings.home.resolve()
    return airflow_env(
        home,
        artifact_root=settings.artifacts,
        dags_folder=settings.dags_folder,
        extra={
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(settings.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.url}/execution/",
            "AIRFLOW__API__BASE_URL": settings.url,
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(settings.port),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
            # Fresh per start, only in the environment: never written to disk.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        },
    )


def migrate(settings: ServerSettings, env: Mapping[str, str], timeout_s: float = 300.0) -> float:
    """``airflow db migrate`` (idempotent); returns the seconds it took."""
    log_path = settings.home.resolve() / "logs" / "server" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "wb") as log_file:
        try:
            done = subprocess.run(
                [airflow_executable(), "db", "migrate"],
                env=dict(env), stdout=log_file, stderr=subprocess.STDOUT,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ServerError(
                f"`airflow db migrate` took over {timeout_s:.0f} s ({log_path})"
            ) from None
    if done.returncode != 0:
        reason = log_reason(log_path) or "no output"
        raise ServerError(f"`airflow db migrate` failed: {reason} ({log_path})")
    return time.perf_counter() - t0


def start(settings: ServerSettings) -> AirflowServer:
    """Migrate the DB, then launch the three components, each in a new process group.

    From here until ``stop``, SIGTERM and SIGHUP raise SystemExit (see the module docstring);
    if anything fails or is interrupted on the way, what was launched is stopped again.
    """
    check_free(settings.port)
    password = prepare_home(settings)
    env = server_env(settings)
    server = AirflowServer(settings, password, log_dir=settings.home.resolve() / "logs" / "server")
    server.signals.enter_context(stop_on_signals())
    try:
        server.migrate_s = migrate(settings, env)
        server.started_at = time.perf_counter()
        airflow = airflow_executable()
        for name, args in COMPONENTS.items():
            command = [airflow, *(a.format(port=settings.port) for a in args)]
            log_path = server.log_dir / f"{name}.log"
            server.components[name] = spawn(name, command, settings.url, log_path, env)
    except OSError as exc:
        stop(server)
        raise ServerError(f"cannot start Airflow: {exc}") from None
    except BaseException:  # SIGTERM/SIGHUP (SystemExit), Ctrl-C, a failed migration
        stop(server)
        raise
    return server


def wait_ready(
    server: AirflowServer, timeout_s: float = 240.0, dag_ids: Iterable[str] | None = None
) -> float:
    """Block until the API, scheduler and dag-processor are healthy and our DAGs are parsed.

    Returns the seconds since launch; ServerError when a component exits or time runs out.
    """
    client = server.client(timeout_s=5.0)
    pending = list(all_dag_ids() if dag_ids is None else dag_ids)
    ready = wait_until(
        lambda: _healthy(client) and _dags_parsed(client, pending),
        timeout_s,
        alive=lambda: all(component.alive() for component in server.components.values()),
        poll_s=1.0,
    )
    if ready:
        return time.perf_counter() - server.started_at
    _check_alive(server)
    raise ServerError(
        f"Airflow at {server.url} not ready after {timeout_s:.0f} s (logs: {server.log_dir})"
    )


def _healthy(client: ApiClient) -> bool:
    try:
        health = client.health()
    except ServerError:
        return False
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "dag_processor")
    )


def _dags_parsed(client: ApiClient, pending: list[str]) -> bool:
    try:
        pending[:] = [dag_id for dag_id in pending if not client.has_dag(dag_id)]
    except ServerError:
        return False
    return not pending


def _check_alive(server: AirflowServer) -> None:
    """ServerError naming the first component that exited, with the telling line of its log."""
    for name, component in server.components.items():
        if not component.alive():
            code = component.process.returncode
            raise ServerError(f"airflow {name} exited with code {code}: {component.log_reason()}")


def wait_until_exit(server: AirflowServer, poll_s: float = 1.0) -> None:
    """Block while all components run (Ctrl-C ends it); ServerError if one of them dies."""
    while True:
        _check_alive(server)
        time.sleep(poll_s)


def stop(server: AirflowServer, timeout_s: float = 30.0) -> None:
    """Stop cleanly: scheduler and dag-processor first, then the API server, then stragglers.

    The API server's graceful shutdown waits for its clients' keep-alive connections, so it
    goes last; whatever is still alive after ``timeout_s`` (a stuck task) is SIGKILLed. Then
    the signal handlers ``start`` installed are restored.
    """
    with signals_ignored():
        _stop_components(server, timeout_s)
    server.signals.close()


def _stop_components(server: AirflowServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    components = server.components.values()
    clients = [c for c in components if c.name != API_SERVER]
    api = [c for c in components if c.name == API_SERVER]
    for batch in (clients, api):
        for component in batch:
            signal_group(component.process.pid, signal.SIGTERM)
        for component in batch:
            wait_s = max(deadline - time.monotonic(), 0.1)
            group_gone(component.process.pid, wait_s, leader=component.process)
    for component in components:  # SIGKILL what is left of each group (a stuck task process)
        stop_group(component.process.pid, leader=component.process, timeout_s=0.0)


@contextmanager
def running(settings: ServerSettings, timeout_s: float = 240.0) -> Iterator[AirflowServer]:
    """Start, wait until ready, yield, and always stop."""
    server = start(settings)
    try:
        wait_ready(server, timeout_s)
        yield server
    finally:
        stop(server)


# ------------------------------------------------------------------------------------------
# REST API v2
# ------------------------------------------------------------------------------------------


class ApiClient:
    """The few REST API v2 calls the project needs, with one-line ServerErrors."""

    def __init__(
        self, base_url: str, username: str, password: str, timeout_s: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self._token: str | None = None

    def _call(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        try:
            response = requests.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout_s, **kwargs
            )
        except requests.RequestException as exc:
            raise ServerError(
                f"Airflow API {self.base_url} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise ServerError(
                f"Airflow API {method} {path}: HTTP {response.status_code} {_detail(response)}"
            )
        return response.json() if response.content else None

    def token(self) -> str:
        if self._token is None:
            body = {"username": self.username, "password": self.password}
            answer = self._call("POST", "/auth/token", auth=False, json=body)
            self._token = str(answer["access_token"])
        return self._token

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/v2/monitor/health", auth=False) or {})

    def has_dag(self, dag_id: str) -> bool:
        try:
            self._call("GET", f"/api/v2/dags/{dag_id}")
        except ServerError as exc:
            if "HTTP 404" in str(exc):
                return False
            raise
        return True

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        """Create a manual run; returns its run id (the DAG's params validate ``conf``)."""
        answer = self._call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": dict(conf)},
        )
        return str(answer["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout_s: float = 600.0, poll_s: float = 1.0
    ) -> str:
        """Poll until the run is success/failed; returns the state (ServerError on timeout)."""
        deadline = time.monotonic() + timeout_s
        state: Any = "unknown"
        while True:
            try:
                state = self.dag_run(dag_id, run_id).get("state")
            except ServerError as exc:  # a busy single-worker API may time out: keep polling
                if "HTTP" in str(exc):
                    raise
            if state in FINISHED:
                return str(state)
            if time.monotonic() > deadline:
                raise ServerError(f"run {run_id} of {dag_id} still {state} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        answer = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti.get("state") for ti in answer.get("task_instances", [])}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path).get("value")


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail:  # FastAPI validation errors
        detail = detail[0].get("msg") if isinstance(detail[0], dict) else detail[0]
    text = str(detail if detail is not None else response.text).strip()
    return (text.splitlines()[0] if text else "")[:300]
