"""`mlopsbench server airflow` stops its whole process group on SIGTERM and SIGHUP, not only Ctrl-C.

The fast tests run the real CLI command in a child process with the three Airflow components
replaced by sleeping Python processes (one of them with a child of its own, like a task the
LocalExecutor forked); the slow test starts the real deployment and sends SIGTERM to the CLI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from mlopsbench.support.net import port_in_use
from mlopsbench.support.processes import STOP_SIGNALS
from mlopsbench.tools.airflow import server

READY_LINE = "stops all processes."  # the CLI's last line once Airflow is ready

# The CLI command with migrate/launch/readiness swapped for sleepers (argv: port, home).
_FAKE_SERVER = textwrap.dedent(
    """
    import sys

    from mlopsbench.tools.airflow import server

    SLEEP = "import time; time.sleep(600)"
    FORKS = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); " % SLEEP
    server.migrate = lambda settings, env, timeout_s=300.0: 0.0
    server.airflow_executable = lambda: sys.executable
    server.COMPONENTS = {
        "api-server": ["-c", SLEEP],
        "scheduler": ["-c", FORKS + SLEEP],
        "dag-processor": ["-c", SLEEP],
    }
    server.wait_ready = lambda srv, timeout_s=240.0, dag_ids=(): 0.0

    from mlopsbench.cli import app

    app(["server", "airflow", "--port", sys.argv[1], "--home", sys.argv[2]])
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_line(proc: subprocess.Popen[bytes], out: Path, line: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in out.read_text(errors="replace"):
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited with {proc.returncode}: {out.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {line!r} after {timeout_s:.0f} s: {out.read_text()[-2000:]}")
        time.sleep(0.2)


def _kill_leftovers(proc: subprocess.Popen[bytes], descendants: list[psutil.Process]) -> None:
    """After a failed check: no sleeper or Airflow process may outlive the test."""
    if proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            descendants = descendants or psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
    for member in descendants:
        try:
            member.kill()
        except psutil.Error:
            continue
    proc.wait(timeout=10)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _signal_and_check(
    proc: subprocess.Popen[bytes],
    sig: signal.Signals,
    out: Path,
    descendants: list[psutil.Process],
    expect_members: int,
) -> float:
    """Send ``sig`` to the CLI; assert it exits 128+sig and leaves no process behind."""
    assert len(descendants) >= expect_members, descendants
    pgid = os.getpgid(descendants[0].pid)
    assert pgid != os.getpgid(proc.pid)  # the components run in a group of their own
    t0 = time.perf_counter()
    proc.send_signal(sig)
    code = proc.wait(timeout=90)
    seconds = time.perf_counter() - t0
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"{sig.name} left {alive}"
    assert not _group_members(pgid)
    assert code == 128 + sig, out.read_text()[-2000:]
    text = out.read_text(errors="replace")
    assert "stopping Airflow" in text and "Traceback" not in text
    return seconds


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_cli_stops_every_process_on_signal(
    tmp_path: Path, sig: signal.Signals, as_in_a_terminal: Callable[[], None]
) -> None:
    out = tmp_path / "cli.out"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _FAKE_SERVER, str(_free_port()), str(tmp_path / "home")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=as_in_a_terminal,  # SIGHUP as a closed terminal sends it
        )  # fmt: skip
    descendants: list[psutil.Process] = []
    try:
        _wait_for_line(proc, out, READY_LINE, timeout_s=120)
        time.sleep(0.5)  # the scheduler stand-in's own child is up
        descendants = psutil.Process(proc.pid).children(recursive=True)
        _signal_and_check(proc, sig, out, descendants, expect_members=4)
    finally:
        _kill_leftovers(proc, descendants)


@pytest.fixture
def default_stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP at their defaults, as in a terminal (under ``nohup`` SIGHUP is
    ignored, and start() rightly keeps an ignored signal ignored); the old handlers after."""
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in STOP_SIGNALS}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def test_start_restores_the_signal_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_stop_signals: None
) -> None:
    """start() turns SIGTERM/SIGHUP into SystemExit until stop(), then puts the old ones back."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    monkeypatch.setattr(server, "migrate", lambda settings, env, timeout_s=300.0: 0.0)
    monkeypatch.setattr(server, "airflow_executable", lambda: sys.executable)
    monkeypatch.setattr(server, "COMPONENTS", {"api-server": ["-c", "import time; time.sleep(60)"]})
    airflow = server.start(server.ServerSettings(home=tmp_path / "home", port=_free_port()))
    try:
        for sig in STOP_SIGNALS:
            handler = signal.getsignal(sig)
            assert callable(handler)
            with pytest.raises(SystemExit) as raised:
                handler(int(sig), None)
            assert raised.value.code == 128 + sig
    finally:
        server.stop(airflow)
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
    assert all(p.poll() is not None for p in airflow.processes.values())


def test_signal_during_migration_stops_and_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM that lands before start() returns still leaves nothing trapped or running."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def interrupted(settings: object, env: object, timeout_s: float = 300.0) -> float:
        raise SystemExit(128 + signal.SIGTERM)

    monkeypatch.setattr(server, "migrate", interrupted)
    with pytest.raises(SystemExit):
        server.start(server.ServerSettings(home=tmp_path / "home", port=_free_port()))
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_an_ignored_sighup_stays_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under nohup a closed terminal must not stop the server."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        monkeypatch.setattr(server, "migrate", lambda settings, env, timeout_s=300.0: 0.0)
        monkeypatch.setattr(server, "airflow_executable", lambda: sys.executable)
        monkeypatch.setattr(server, "COMPONENTS", {"api-server": ["-c", "pass"]})
        airflow = server.start(server.ServerSettings(home=tmp_path / "home", port=_free_port()))
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert callable(signal.getsignal(signal.SIGTERM))
        server.stop(airflow)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_sigterm_stops_the_real_deployment(tmp_path: Path) -> None:
    """`kill -TERM <cli pid>`: api-server, scheduler, dag-processor all go and free the port."""
    port = _free_port()
    out = tmp_path / "cli.out"
    cli = [sys.executable, "-m", "mlopsbench"]  # this (the tool environment's) interpreter
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [*cli, "server", "airflow", "--port", str(port), "--home", str(tmp_path / "home")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    descendants: list[psutil.Process] = []
    try:
        _wait_for_line(proc, out, READY_LINE, timeout_s=300)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        seconds = _signal_and_check(proc, signal.SIGTERM, out, descendants, expect_members=3)
        print(f"SIGTERM to exit: {seconds:.1f} s")
    finally:
        _kill_leftovers(proc, descendants)
    assert not port_in_use(port)
