"""A local Airflow 3 deployment on 127.0.0.1, from one machine's LocalExecutor to Celery workers.

Two shapes, the same DAGs:

* **LocalExecutor** (default): api-server, scheduler and dag-processor; the scheduler forks one
  process per task. Metadata DB in SQLite, or in PostgreSQL with ``db="postgres"``.
* **CeleryExecutor**: PostgreSQL (a private cluster under ``<home>/postgres``, its own port; run
  by an unprivileged user when we are root), Redis as the broker (``<home>/redis``, its own port,
  a password, ``protected-mode yes``, no persistence), the three Airflow processes and N
  ``airflow celery worker`` processes with distinct names (``celery-1``, ``celery-2``...) on the
  ``default`` queue. A task instance records the worker that ran it as its hostname
  (``celery-1@<host>``, via ``[core] hostname_callable``).

Every process leads its own process group (a stop takes every task process it forked too) and
nothing listens but the API, PostgreSQL and Redis, all on 127.0.0.1: not ``airflow standalone``
(log-server ports 8793/8794 on all interfaces), and the scheduler and workers run with
``--skip-serve-logs`` (task logs are files under ``<home>/logs`` that the API server reads).
Passwords (admin, database, broker, JWT secret) are generated; only the admin's is kept, in a
0600 file; the others live in the processes' environment for one start.

Faults: a Celery worker that dies mid-task stops heartbeating; after ``heartbeat_timeout_s`` the
scheduler fails that try and Airflow's retries run the task again, on a worker still alive.
Celery keeps ``task_acks_late`` (Airflow's default; a message is acknowledged once its task
ended) and leaves ``task_reject_on_worker_lost`` off: a message Celery redelivered would race
Airflow's own retry of the same try. Losing a worker is reported and the deployment runs on;
losing PostgreSQL, Redis, the api-server, the scheduler or the dag-processor (or every worker)
is a one-line ServerError naming it, and the caller's ``stop`` ends the rest.

``start`` / ``wait_ready`` / ``stop`` (or the ``running`` context manager) are what the CLI and
the tests use; ``ApiClient`` talks to the REST API v2 with a JWT from ``/auth/token``. From
``start`` until ``stop``, SIGTERM and SIGHUP raise ``SystemExit`` in the main thread (like Ctrl-C
raises KeyboardInterrupt), so the caller's ``finally: stop(server)`` runs and every process
group goes; a SIGHUP ignored at start (``nohup``) stays ignored, and ``stop`` itself is not
interrupted by them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support import postgres, redis
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
from mlopsbench.tools.airflow.common import (
    DAGS_FOLDER,
    ENV_WORKER_NAME,
    airflow_env,
    served_dag_ids,
)

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
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
DATABASES = ("sqlite", "postgres")
DB_NAME = "airflow"  # database and role in the private PostgreSQL
WORKER_PREFIX = "celery-"
WORKER_READY = " ready."  # Celery's line once a worker consumes ("celery-1@host ready.")
HOSTNAME_CALLABLE = "mlopsbench.tools.airflow.common.worker_hostname"
SERVICE_SETTLE_S = 3.0  # after an Airflow process died: time for a dying service to show it
MIN_HEARTBEAT_INTERVAL_S = 1  # see server_env: how soon a finished task gives its slot back
SERVICES = {
    "postgres": "PostgreSQL (the metadata database)",
    "redis": "Redis (the Celery broker)",
}


@dataclass(frozen=True)
class ServerSettings:
    home: Path
    port: int = 8080
    dags_folder: Path = DAGS_FOLDER
    artifact_root: Path | None = None  # default: <home>/artifacts
    parallelism: int = 2  # task slots of the LocalExecutor (Celery: at least workers x concurrency)
    executor: str = "local"  # local | celery
    db: str | None = None  # sqlite | postgres; default: sqlite for local, postgres for celery
    workers: int = 2  # Celery workers
    worker_concurrency: int = 1  # task slots per Celery worker (training is CPU-bound)
    heartbeat_timeout_s: int = 60  # a task whose worker went silent this long is failed/retried
    extra_env: Mapping[str, str] = field(default_factory=dict)  # for every Airflow process

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}"
            )
        if self.db is not None and self.db not in DATABASES:
            raise ConfigError(f"--db must be one of {', '.join(DATABASES)}, got {self.db!r}")
        if self.executor == "celery" and self.db == "sqlite":
            raise ConfigError(
                "the Celery executor needs a database every worker reaches: use --db postgres "
                "(SQLite is one process's file)"
            )
        for name, value, least in (
            ("--workers", self.workers, 1),
            ("--concurrency", self.worker_concurrency, 1),
            ("--parallelism", self.parallelism, 1),
            ("heartbeat timeout", self.heartbeat_timeout_s, 5),
        ):
            if value < least:
                raise ConfigError(f"{name} must be >= {least}, got {value}")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def artifacts(self) -> Path:
        return (self.artifact_root or self.home / "artifacts").resolve()

    @property
    def database(self) -> str:
        return self.db or ("postgres" if self.executor == "celery" else "sqlite")

    @property
    def celery(self) -> bool:
        return self.executor == "celery"

    @property
    def slots(self) -> int:
        """``[core] parallelism``: tasks running at once over the whole deployment."""
        if self.celery:
            return max(self.parallelism, self.workers * self.worker_concurrency)
        return self.parallelism

    def describe(self) -> str:
        """``CeleryExecutor, 2 workers, PostgreSQL`` / ``LocalExecutor, SQLite``."""
        db = "PostgreSQL" if self.database == "postgres" else "SQLite"
        workers = f", {self.workers} Celery worker{'s' * (self.workers > 1)}" if self.celery else ""
        return f"{EXECUTORS[self.executor]}{workers}, {db}"


@dataclass
class AirflowServer:
    settings: ServerSettings
    password: str
    components: dict[str, ManagedProcess] = field(default_factory=dict)  # Airflow's processes
    services: dict[str, ManagedProcess] = field(default_factory=dict)  # postgres, redis
    postgres: postgres.Postgres | None = None
    redis: redis.Redis | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)  # what Airflow processes get
    log_dir: Path = Path()
    services_s: float = 0.0  # PostgreSQL + Redis up
    migrate_s: float = 0.0
    launched_at: float = 0.0  # perf_counter() when start() was called
    started_at: float = 0.0  # perf_counter() when Airflow's processes were launched
    lost_workers: dict[str, str] = field(default_factory=dict)  # name -> how it ended
    pg_refusals: int = 0  # checks in a row that found PostgreSQL refusing connections
    # SIGTERM/SIGHUP -> SystemExit from start() on; stop() closes it, restoring the handlers.
    signals: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        every = {**self.services, **self.components}
        return {name: member.process for name, member in every.items()}

    @property
    def workers(self) -> dict[str, ManagedProcess]:
        return {n: c for n, c in self.components.items() if n.startswith(WORKER_PREFIX)}

    def db_env(self) -> dict[str, str]:
        """What a process needs to reach the metadata DB (a read-back worker, a CLI call)."""
        keys = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "PGPASSWORD")
        return {key: self.env[key] for key in keys if key in self.env}

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


def server_env(settings: ServerSettings, server: AirflowServer | None = None) -> dict[str, str]:
    """One environment for every Airflow process (they must share the JWT secret), pointed at
    the deployment's database and broker once ``server`` has started them."""
    home = settings.home.resolve()
    extra = {
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[settings.executor],
        "AIRFLOW__CORE__PARALLELISM": str(settings.slots),
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
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(settings.heartbeat_timeout_s),
        # The task supervisor notices its task process exit only when its select() wakes, and
        # that waits up to this interval (default 5 s) once the task closed its sockets: every
        # task held its worker slot ~5 s after it ended, so a second mapped trial found no free
        # slot. 1 s: one heartbeat call a second at most per running task, a slot back in <= 1 s.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(MIN_HEARTBEAT_INTERVAL_S),
    }
    pg = server.postgres if server is not None else None
    if pg is not None:
        extra.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("postgresql+psycopg2"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": pg.url("postgresql+asyncpg"),
                **pg.env(),  # PGPASSWORD: the URLs carry no password
            }
        )
    broker = server.redis if server is not None else None
    if settings.celery and pg is not None and broker is not None:
        extra.update(
            {
                "AIRFLOW__CELERY__BROKER_URL": broker.url(),
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.url("postgresql+psycopg2"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.worker_concurrency),
                "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                # Redelivery of an unacknowledged message (acks_late) after a day, explicitly.
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
            }
        )
    return airflow_env(
        home,
        artifact_root=settings.artifacts,
        dags_folder=settings.dags_folder,
        extra={**extra, **settings.extra_env},
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
    """Start PostgreSQL and Redis when the settings need them, migrate the DB, then launch
    Airflow's processes, each in a new process group.

    From here until ``stop``, SIGTERM and SIGHUP raise SystemExit (see the module docstring);
    if anything fails or is interrupted on the way, what was launched is stopped again.
    """
    launched_at = time.perf_counter()
    check_free(settings.port)
    password = prepare_home(settings)
    server = AirflowServer(
        settings,
        password,
        log_dir=settings.home.resolve() / "logs" / "server",
        launched_at=launched_at,
    )
    server.signals.enter_context(stop_on_signals())
    try:
        _start_services(server)
        env = server_env(settings, server)
        server.env = env
        server.migrate_s = migrate(settings, env)
        server.started_at = time.perf_counter()
        airflow = airflow_executable()
        for name, args, own_env in commands(settings):
            command = [airflow, *(a.format(port=settings.port) for a in args)]
            log_path = server.log_dir / f"{name}.log"
            server.components[name] = spawn(
                name, command, settings.url, log_path, {**env, **own_env}
            )
    except OSError as exc:
        stop(server)
        raise ServerError(f"cannot start Airflow: {exc}") from None
    except BaseException:  # SIGTERM/SIGHUP (SystemExit), Ctrl-C, a failed migration
        stop(server)
        raise
    return server


def _start_services(server: AirflowServer) -> None:
    settings, home = server.settings, server.settings.home.resolve()
    t0 = time.perf_counter()
    if settings.database == "postgres":
        server.postgres = postgres.start(
            postgres.PostgresSettings(root=home / "postgres", database=DB_NAME, role=DB_NAME)
        )
        server.services["postgres"] = server.postgres.proc
    if settings.celery:
        server.redis = redis.start(redis.RedisSettings(root=home / "redis"))
        server.services["redis"] = server.redis.proc
    server.services_s = time.perf_counter() - t0


def commands(settings: ServerSettings) -> list[tuple[str, list[str], dict[str, str]]]:
    """``(name, airflow arguments, own environment)`` of every Airflow process to launch."""
    launched = [(name, list(args), {}) for name, args in COMPONENTS.items()]
    if settings.celery:
        for number in range(1, settings.workers + 1):
            name = f"{WORKER_PREFIX}{number}"
            args = [
                *("celery", "worker", "--celery-hostname", f"{name}@%h"),
                *("--concurrency", str(settings.worker_concurrency)),
                "--skip-serve-logs",  # its log server would listen on every interface
                "--without-mingle",  # nothing to synchronise with at start-up
            ]
            launched.append(
                (
                    name,
                    args,
                    {ENV_WORKER_NAME: name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE},
                )
            )
    return launched


def wait_ready(
    server: AirflowServer, timeout_s: float = 240.0, dag_ids: Iterable[str] | None = None
) -> float:
    """Block until the API, scheduler and dag-processor are healthy, every Celery worker
    consumes and our DAGs are parsed.

    Returns the seconds since launch; ServerError when a process exits or time runs out.
    """
    client = server.client(timeout_s=5.0)
    pending = list(served_dag_ids() if dag_ids is None else dag_ids)
    ready = wait_until(
        lambda: _healthy(client) and _workers_ready(server) and _dags_parsed(client, pending),
        timeout_s,
        alive=lambda: all(member.alive() for member in _every(server)),
        poll_s=0.5,
    )
    if ready:
        return time.perf_counter() - server.started_at
    check_alive(server)
    raise ServerError(
        f"Airflow at {server.url} not ready after {timeout_s:.0f} s (logs: {server.log_dir})"
    )


def _every(server: AirflowServer) -> list[ManagedProcess]:
    return [*server.services.values(), *server.components.values()]


def _healthy(client: ApiClient) -> bool:
    try:
        health = client.health()
    except ServerError:
        return False
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "dag_processor")
    )


def _workers_ready(server: AirflowServer) -> bool:
    for worker in server.workers.values():
        try:
            text = worker.log_path.read_text(errors="replace")
        except OSError:
            return False
        if WORKER_READY not in text:
            return False
    return True


def _dags_parsed(client: ApiClient, pending: list[str]) -> bool:
    try:
        pending[:] = [dag_id for dag_id in pending if not client.has_dag(dag_id)]
    except ServerError:
        return False
    return not pending


def check_alive(server: AirflowServer) -> list[str]:
    """A one-line ServerError naming the part of the deployment that is gone.

    The services come first: PostgreSQL or Redis going down takes Airflow's processes with it,
    so when one of those died, the services get a few seconds to show whether they caused it.
    A Celery worker gone is no error while another one runs: the names of the workers lost
    since the last call are returned (and kept in ``server.lost_workers``).
    """
    _check_services(server)
    workers = server.workers
    dead = [n for n, c in server.components.items() if n not in workers and not c.alive()]
    lost = [n for n, w in workers.items() if not w.alive() and n not in server.lost_workers]
    if dead or lost:
        _check_services(server, settle_s=SERVICE_SETTLE_S)
    for name in dead:
        raise ServerError(_gone(f"airflow {name}", name, server.components[name]))
    for name in lost:
        server.lost_workers[name] = _ended(workers[name])
    if workers and len(server.lost_workers) == len(workers):
        raise ServerError(
            "every Celery worker has exited ("
            + ", ".join(f"{name} {how}" for name, how in server.lost_workers.items())
            + ")"
        )
    return lost


def _check_services(server: AirflowServer, settle_s: float = 0.0) -> None:
    """ServerError when PostgreSQL or Redis exited, or PostgreSQL refuses connections (twice
    in a row, or at all while ``settle_s`` lasts: then something else already died)."""
    deadline = time.monotonic() + settle_s
    while True:
        for name, service in server.services.items():
            if not service.alive():
                raise ServerError(_gone(SERVICES[name], name, service))
        if server.postgres is not None:
            refusing = not server.postgres.accepting()
            server.pg_refusals = server.pg_refusals + 1 if refusing else 0
            if server.pg_refusals >= 2 or (refusing and settle_s):
                raise ServerError(
                    f"{SERVICES['postgres']} refuses connections (shutting down): "
                    f"{server.postgres.reason() or 'see ' + str(server.postgres.proc.log_path)}"
                )
        if time.monotonic() >= deadline:
            return
        time.sleep(0.5)


def _gone(label: str, name: str, member: ManagedProcess) -> str:
    """``PostgreSQL (the metadata database) exited with code 0: FATAL: ...`` in one line."""
    reason = _reason(name, member)
    return f"{label} {_ended(member)}" + (f": {reason}" if reason else f" (log: {member.log_path})")


def _ended(member: ManagedProcess) -> str:
    code = member.process.returncode
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _reason(name: str, member: ManagedProcess) -> str:
    """The telling line of the member's log; none when it was killed (its log cannot say)."""
    if (member.process.returncode or 0) < 0:
        return ""
    if name == "postgres":
        return postgres.server_reason(member.log_path)
    if name == "redis":
        return redis.server_reason(member.log_path)
    return member.log_reason()


def wait_until_exit(
    server: AirflowServer,
    poll_s: float = 1.0,
    on_worker_lost: Callable[[str, str], None] | None = None,
) -> None:
    """Block while the deployment runs (Ctrl-C ends it); ServerError when a part of it dies.

    A lost Celery worker is reported through ``on_worker_lost(name, how it ended)``.
    """
    while True:
        for name in check_alive(server):
            if on_worker_lost is not None:
                on_worker_lost(name, server.lost_workers[name])
        time.sleep(poll_s)


def stop(server: AirflowServer, timeout_s: float = 30.0) -> None:
    """Stop cleanly: workers, scheduler and dag-processor first, then the API server, then
    stragglers, then Redis and PostgreSQL (fast shutdown).

    The API server's graceful shutdown waits for its clients' keep-alive connections, so it
    goes after them; whatever is still alive after ``timeout_s`` (a stuck task) is SIGKILLed.
    Then the signal handlers ``start`` installed are restored.
    """
    with signals_ignored():
        _stop_components(server, timeout_s)
        for name in ("redis", "postgres"):  # the database last: everything else wrote to it
            member = server.services.get(name)
            if name == "postgres" and server.postgres is not None:
                postgres.stop(server.postgres)  # fast shutdown: SIGINT to the postmaster
            elif member is not None:
                stop_group(member.process.pid, leader=member.process, timeout_s=10.0)
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

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones too): state, hostname, queue, times."""
        answer = self._call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000"
        )
        return list(answer.get("task_instances", []))

    def tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Every try of one task instance, oldest first (hostname, state, times)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        answer = self._call("GET", path)
        return sorted(answer.get("task_instances", []), key=lambda t: t.get("try_number", 0))

    def xcom(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        map_index: int = -1,
    ) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        if map_index >= 0:
            path += f"?map_index={map_index}"
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
