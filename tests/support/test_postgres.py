"""A private PostgreSQL per server: 127.0.0.1 only, its own port, a password per start."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import psutil
import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.support import postgres
from mlopsbench.support.net import port_in_use

needs_postgres = pytest.mark.skipif(
    not postgres.installed(), reason="PostgreSQL is not installed (apt-get install postgresql)"
)


def _psql(pg: postgres.Postgres, password: str, sql: str = "SELECT current_user") -> str:
    done = subprocess.run(
        [str(pg.bindir / "psql"), pg.url(), "-tAX", "-c", sql],
        env={"PATH": os.environ["PATH"], "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else f"error: {done.stderr.strip()}"


def _listening(pid: int) -> set[str]:
    """Addresses the server's processes listen on."""
    members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {
        conn.laddr.ip
        for member in members
        for conn in member.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


@needs_postgres
@pytest.mark.timeout(180)
def test_cluster_is_private_loopback_and_gets_a_new_password_each_start(service_dir: Path) -> None:
    settings = postgres.PostgresSettings(root=service_dir / "pg", database="app", role="app")
    pg = postgres.start(settings)
    try:
        assert _psql(pg, pg.password) == "app"
        assert "password authentication failed" in _psql(pg, "wrong")
        assert _listening(pg.proc.process.pid) == {"127.0.0.1"}
        assert pg.url() == f"postgresql://app@127.0.0.1:{pg.port}/app"  # no password in it
        assert pg.env() == {"PGPASSWORD": pg.password} and pg.accepting()
        data = settings.data_dir.stat()
        assert data.st_mode & 0o777 == 0o700
        assert settings.socket_dir.stat().st_mode & 0o777 == 0o700
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as an unprivileged user
            assert pwd.getpwuid(data.st_uid).pw_name == pg.os_user != "root"
            assert psutil.Process(pg.proc.process.pid).username() == pg.os_user
        assert pg.password not in settings.log_path.read_text()
        first = pg.password
        _psql(pg, pg.password, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
    finally:
        postgres.stop(pg)
    assert not pg.alive() and not port_in_use(pg.port)

    again = postgres.start(settings)  # the same cluster, a new port and password
    try:
        assert again.password != first
        assert _psql(again, again.password, "SELECT x FROM kept") == "7"
        assert "password authentication failed" in _psql(again, first)
    finally:
        postgres.stop(again)
    assert not again.alive() and not port_in_use(again.port)


def test_names_are_checked_identifiers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid PostgreSQL role name"):
        postgres.PostgresSettings(root=tmp_path, database="app", role="app; DROP")


def test_missing_postgresql_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "PROGRAMS", ("initdb-that-does-not-exist",))
    with pytest.raises(
        ConfigError, match=r"PostgreSQL is not installed.*apt-get install postgresql"
    ):
        postgres.find_bindir()


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: PostgreSQL then runs as another user")
def test_as_root_without_a_user_or_a_reachable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(postgres.ENV_USER, "mlopsbench-no-such-user")
    with pytest.raises(ConfigError, match="useradd") as raised:
        postgres.server_user()
    assert "\n" not in str(raised.value)
    monkeypatch.setenv(postgres.ENV_USER, "root")
    with pytest.raises(ConfigError, match="is root"):
        postgres.server_user()
    monkeypatch.delenv(postgres.ENV_USER)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    settings = postgres.PostgresSettings(root=closed / "pg", database="app", role="app")
    with pytest.raises(ConfigError, match="cannot enter") as raised:
        postgres.start(settings)
    assert "chmod o+x" in str(raised.value) and "\n" not in str(raised.value)
    assert not (closed / "pg").exists()  # failed before creating anything


def test_log_reason_prefers_shutdown_requests_then_errors(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text(
        "2026-01-01 00:00:00 UTC [1] LOG:  database system is ready to accept connections\n"
        '2026-01-01 00:00:01 UTC [9] FATAL:  password authentication failed for user "app"\n'
        "2026-01-01 00:00:02 UTC [1] LOG:  checkpoint complete\n"
    )
    assert postgres.server_reason(log) == 'FATAL: password authentication failed for user "app"'
    with log.open("a") as handle:
        handle.write("2026-01-01 00:00:03 UTC [1] LOG:  received smart shutdown request\n")
    assert postgres.server_reason(log) == "LOG: received smart shutdown request"
    assert postgres.server_reason(tmp_path / "missing.log") == ""
