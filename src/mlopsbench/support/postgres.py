"""A private PostgreSQL for one server: its own data directory, port and socket, on 127.0.0.1.

Airflow's metadata database (the Celery executor needs one every process can reach) and MLflow's
backend store both use it. ``<root>/data`` is the cluster (created with ``initdb`` on first
start, kept across restarts), ``<root>/socket`` its Unix socket (mode 0700), and the server
listens on 127.0.0.1 only, on its own port.

PostgreSQL refuses to run as root: started by root, it runs as an unprivileged user
(``$MLOPSBENCH_POSTGRES_USER``, else ``postgres``, which the Debian package creates), who owns
``<root>`` and must be able to enter every folder above it. Otherwise it runs as the caller.

Access: the socket trusts local connections (only its owner and root can open the folder);
TCP needs a password, generated at every start and set on the application role over the
socket. Clients get it as ``PGPASSWORD`` (libpq and asyncpg read it), so no URL, command line
or file holds it: :meth:`Postgres.url` has no password and :meth:`Postgres.env` carries it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support.net import LOCALHOST, check_free, free_port, wait_until
from mlopsbench.support.processes import ManagedProcess, group_gone, signal_group, stop_group

ENV_USER = "MLOPSBENCH_POSTGRES_USER"  # who runs PostgreSQL when we are root
ENV_BIN = "MLOPSBENCH_POSTGRES_BIN"  # the folder with initdb, postgres, psql, pg_isready
DEFAULT_OS_USER = "postgres"
SUPERUSER = "mlopsbench"  # the cluster's superuser: reachable over the private socket only
PROGRAMS = ("initdb", "postgres", "psql", "pg_isready")
READY_TIMEOUT_S = 60.0
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SERVER_LINE = re.compile(r"\b(FATAL|PANIC|ERROR):\s+(.*)")
_SHUTDOWN_LINE = re.compile(r"\b(LOG):\s+(received \w+ shutdown request)")


@dataclass(frozen=True)
class PostgresSettings:
    """One cluster under ``root`` serving one database to one role."""

    root: Path
    database: str
    role: str
    port: int = 0  # 0: a free loopback port, picked at start
    max_connections: int = 200  # Airflow: a pool per process (api-server, scheduler, workers...)

    def __post_init__(self) -> None:
        for what, name in (("database", self.database), ("role", self.role)):
            if not _IDENTIFIER.fullmatch(name):
                raise ConfigError(f"invalid PostgreSQL {what} name {name!r}")

    @property
    def data_dir(self) -> Path:
        return self.root.resolve() / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root.resolve() / "socket"

    @property
    def log_path(self) -> Path:
        return self.root.resolve() / "postgres.log"


@dataclass
class Postgres:
    """A running cluster: its postmaster (a process group of its own), port and password."""

    settings: PostgresSettings
    proc: ManagedProcess
    port: int
    password: str
    os_user: str
    bindir: Path
    ready_s: float = 0.0

    def url(self, scheme: str = "postgresql") -> str:
        """``scheme://role@127.0.0.1:port/database``: no password (see :meth:`env`)."""
        s = self.settings
        return f"{scheme}://{s.role}@{LOCALHOST}:{self.port}/{s.database}"

    def env(self) -> dict[str, str]:
        """What a client process needs besides the URL: the password, for libpq and asyncpg."""
        return {"PGPASSWORD": self.password}

    def alive(self) -> bool:
        return self.proc.alive()

    def accepting(self) -> bool:
        """True while it accepts connections (false when a shutdown is under way: a smart
        shutdown, SIGTERM, waits for every client to leave but refuses new ones)."""
        return _accepting(self.bindir, self.settings, self.port)

    def reason(self) -> str:
        return server_reason(self.proc.log_path)


# ------------------------------------------------------------------------------------------
# where PostgreSQL is and who runs it
# ------------------------------------------------------------------------------------------


def find_bindir() -> Path:
    """``$MLOPSBENCH_POSTGRES_BIN``, else the newest ``/usr/lib/postgresql/*/bin``, else PATH."""
    candidates: list[Path] = []
    if os.environ.get(ENV_BIN):
        candidates.append(Path(os.environ[ENV_BIN]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / program).is_file() for program in PROGRAMS):
            return folder
    raise ConfigError(
        "PostgreSQL is not installed (no initdb/postgres found): apt-get install postgresql, "
        f"or point {ENV_BIN} at its bin folder"
    )


def installed() -> bool:
    """Whether :func:`find_bindir` finds PostgreSQL's programs."""
    try:
        find_bindir()
    except ConfigError:
        return False
    return True


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int

    @property
    def is_me(self) -> bool:
        return self.uid == os.geteuid()


def server_user() -> OsUser:
    """Who runs the server: the caller, or (as root) an unprivileged user."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return OsUser(me.pw_name, me.pw_uid, me.pw_gid)
    name = os.environ.get(ENV_USER, "").strip() or DEFAULT_OS_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"PostgreSQL refuses to run as root and there is no user {name!r} to run it: "
            f"create one (useradd --system mlopsbench) and set {ENV_USER}=mlopsbench"
        ) from None
    if entry.pw_uid == 0:
        raise ConfigError(f"{ENV_USER}={name} is root: PostgreSQL refuses to run as root")
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def check_reachable(path: Path, user: OsUser) -> None:
    """A one-line ConfigError when ``user`` cannot enter every folder down to ``path``."""
    if user.is_me:
        return
    groups = {user.gid, *_groups_of(user.name)}
    for folder in [*reversed(path.parents), path]:
        try:
            info = folder.stat()
        except FileNotFoundError:
            return  # created below, by us, with the default mode
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise ConfigError(
                f"PostgreSQL runs as user {user.name!r} (it refuses root), who cannot enter "
                f"{folder}: keep the server's home in a folder it can reach, or chmod o+x {folder}"
            )


def _groups_of(name: str) -> list[int]:
    import grp

    return [g.gr_gid for g in grp.getgrall() if name in g.gr_mem]


# ------------------------------------------------------------------------------------------
# start / stop
# ------------------------------------------------------------------------------------------


def start(settings: PostgresSettings, timeout_s: float = READY_TIMEOUT_S) -> Postgres:
    """Create the cluster on first use, start it on 127.0.0.1, set a fresh password for the
    role (creating role and database when missing) and return once it accepts connections.

    Anything that fails on the way stops what was started and raises a one-line error.
    """
    bindir = find_bindir()
    user = server_user()
    t0 = time.perf_counter()
    _prepare_folders(settings, user)
    if not (settings.data_dir / "PG_VERSION").is_file():
        _initdb(settings, bindir, user)
    _write_hba(settings, user)
    port = settings.port or free_port()
    check_free(port, "the PostgreSQL port")
    proc = _spawn(settings, bindir, user, port)
    try:
        ready = wait_until(
            lambda: _accepting(bindir, settings, port), timeout_s, alive=proc.alive, poll_s=0.2
        )
        if not ready:
            if not proc.alive():
                raise ServerError(
                    f"PostgreSQL exited with code {proc.process.returncode} before it was "
                    f"ready: {server_reason(proc.log_path) or 'no output'} (log: {proc.log_path})"
                )
            raise ServerError(
                f"PostgreSQL not ready after {timeout_s:.0f} s (log: {proc.log_path})"
            )
        password = secrets.token_urlsafe(24)
        _provision(settings, bindir, port, password)
    except BaseException:
        _stop_process(proc)
        raise
    return Postgres(settings, proc, port, password, user.name, bindir, time.perf_counter() - t0)


def stop(pg: Postgres, timeout_s: float = 30.0) -> None:
    """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), then SIGKILL
    whatever of its process group is left after ``timeout_s``."""
    _stop_process(pg.proc, timeout_s)


def _stop_process(proc: ManagedProcess, timeout_s: float = 30.0) -> None:
    pgid = proc.process.pid
    if signal_group(pgid, 0):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, signal.SIGINT)  # the postmaster only: it stops its children itself
        group_gone(pgid, timeout_s, leader=proc.process)
    stop_group(pgid, leader=proc.process, timeout_s=5.0)


def _prepare_folders(settings: PostgresSettings, user: OsUser) -> None:
    root = settings.root.resolve()
    check_reachable(root, user)
    try:
        for folder in (root, settings.data_dir, settings.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            if user.is_me:
                continue
            if folder == settings.data_dir:
                _chown_tree(folder, user)
            else:
                os.chown(folder, user.uid, user.gid)
    except OSError as exc:
        raise ConfigError(f"cannot prepare PostgreSQL folder {root}: {exc.strerror}") from None


def _chown_tree(folder: Path, user: OsUser) -> None:
    """The data directory must belong to the server's user (skip the walk when it does)."""
    if folder.stat().st_uid == user.uid:
        return
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, user.uid, user.gid)


def _initdb(settings: PostgresSettings, bindir: Path, user: OsUser) -> None:
    command = [
        str(bindir / "initdb"),
        *("-D", str(settings.data_dir), "-U", SUPERUSER, "-E", "UTF8"),
        *("--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256"),
    ]
    done = _run_as(command, user, settings.log_path, timeout_s=120.0)
    if done != 0:
        raise ServerError(
            f"initdb failed (exit code {done}): {server_reason(settings.log_path) or 'no output'}"
            f" (log: {settings.log_path})"
        )


def _write_hba(settings: PostgresSettings, user: OsUser) -> None:
    """Trust the private socket; over TCP, 127.0.0.1 only and a password (SCRAM)."""
    path = settings.data_dir / "pg_hba.conf"
    path.write_text(
        "# written by mlopsbench at every start\n"
        "local all all trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    if not user.is_me:
        os.chown(path, user.uid, user.gid)
    path.chmod(0o600)


def _spawn(settings: PostgresSettings, bindir: Path, user: OsUser, port: int) -> ManagedProcess:
    args = [
        str(bindir / "postgres"),
        *("-D", str(settings.data_dir), "-p", str(port)),
        *("-c", f"listen_addresses={LOCALHOST}"),
        *("-c", f"unix_socket_directories={settings.socket_dir}"),
        *("-c", "unix_socket_permissions=0700"),
        *("-c", f"max_connections={settings.max_connections}"),
        *("-c", "logging_collector=off"),
        # A development server: commits return before the WAL is flushed (a crash of the
        # machine may lose the last moments; the database stays consistent).
        *("-c", "synchronous_commit=off"),
    ]
    url = f"postgresql://{LOCALHOST}:{port}"
    log_path = settings.log_path
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            cwd=settings.data_dir,
            start_new_session=True,
            **_identity(user),
        )  # type: ignore[call-overload]
    return ManagedProcess("PostgreSQL", process, url, log_path)


def _accepting(bindir: Path, settings: PostgresSettings, port: int) -> bool:
    done = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", str(settings.socket_dir), "-p", str(port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        env=_server_env(),
    )
    return done.returncode == 0


def _provision(settings: PostgresSettings, bindir: Path, port: int, password: str) -> None:
    """Role and database when missing, and this start's password, over the private socket.

    The SQL goes through stdin (never a command line); the names are checked identifiers and
    the password is URL-safe base64.
    """
    role, database = settings.role, settings.database
    sql = (
        "DO $$ BEGIN\n"
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
        f"    CREATE ROLE {role} LOGIN;\n"
        "  END IF;\n"
        "END $$;\n"
        f"ALTER ROLE {role} WITH LOGIN PASSWORD '{password}';\n"
        f"SELECT 'CREATE DATABASE {database} OWNER {role}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{database}')\\gexec\n"
    )
    command = [
        str(bindir / "psql"),
        *("-h", str(settings.socket_dir), "-p", str(port), "-U", SUPERUSER, "-d", "postgres"),
        *("-v", "ON_ERROR_STOP=1", "-q", "-X"),
    ]
    done = subprocess.run(
        command, input=sql, text=True, capture_output=True, check=False, env=_server_env()
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServerError(f"cannot set up PostgreSQL database {database!r}: {reason}")


def _run_as(command: list[str], user: OsUser, log_path: Path, timeout_s: float) -> int:
    with log_path.open("ab") as log:
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                cwd="/",
                timeout=timeout_s,
                check=False,
                **_identity(user),
            )  # type: ignore[call-overload]
        except subprocess.TimeoutExpired:
            raise ServerError(f"{Path(command[0]).name} took over {timeout_s:.0f} s") from None
    return int(done.returncode)


def _identity(user: OsUser) -> dict[str, object]:
    """Popen arguments that drop root to ``user`` (its group, no supplementary groups)."""
    if user.is_me:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def _server_env() -> dict[str, str]:
    """A small environment: no PGPASSWORD or other secret of ours reaches the server."""
    keep = ("PATH", "TZ")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"LC_ALL": "C", "LANG": "C"})
    return env


def server_reason(log_path: Path, limit: int = 300) -> str:
    """The telling line of a PostgreSQL log: a shutdown request, else its last FATAL/PANIC/ERROR,
    else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    for pattern in (_SHUTDOWN_LINE, _SERVER_LINE):
        for line in reversed(lines):
            found = pattern.search(line)
            if found:
                return f"{found.group(1)}: {found.group(2)}"[:limit]
    return (lines[-1] if lines else "")[:limit]
