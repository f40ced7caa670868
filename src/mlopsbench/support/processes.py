"""Servers and workers as process groups: start one, stop all of it, stop it on any signal.

A server we start gets its own session (process group); stopping it signals the whole group,
so every worker it forked goes too and no orphan keeps a port. :func:`stop_on_signals` turns
SIGTERM and SIGHUP into ``SystemExit`` so the ``finally`` that stops the group runs for them
as it does for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ServerError
from mlopsbench.support.logs import log_reason
from mlopsbench.support.net import http_ok, wait_until

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@dataclass
class ManagedProcess:
    """A server we started: its process (the group leader), base URL and log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_reason(self) -> str:
        return log_reason(self.log_path)


def spawn(
    name: str,
    args: Sequence[str],
    url: str,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``args`` as a new session (own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_interruptible,
        )
    return ManagedProcess(name, process, url, log_path)


def _interruptible() -> None:
    """In the server's process, before it runs: SIGINT at its default again. Started from a
    background job or ``nohup``, we inherit SIGINT ignored, and so would the server; servers
    that stop their own workers with SIGINT (``dagster dev`` does) then wait for workers that
    never stop. The server has its own session: no terminal's Ctrl-C reaches it anyway."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_healthy(
    proc: ManagedProcess, path: str, timeout_s: float, stop_timeout_s: float = 10.0
) -> float:
    """Poll ``url + path`` until it answers 200 (returns the seconds it took); stop the server
    and raise a one-line ServerError if it dies or never does. Ctrl-C or SIGTERM while waiting
    stops the server too: it is not yet in anybody's ``running`` block. ``stop_timeout_s``: how
    long a server that is stopped gets to exit cleanly before SIGKILL."""
    started = time.perf_counter()
    with stopped_on_interrupt(proc, stop_timeout_s):
        healthy = wait_until(lambda: http_ok(proc.url + path), timeout_s, alive=proc.alive)
    if healthy:
        return time.perf_counter() - started
    if not proc.alive():
        reason = proc.log_reason()
        stop(proc, stop_timeout_s)
        raise ServerError(
            f"{proc.name} exited with code {proc.process.returncode} before it was healthy"
            + (f": {reason}" if reason else f" (log: {proc.log_path})")
        )
    stop(proc, stop_timeout_s)
    raise ServerError(f"{proc.name} not healthy after {timeout_s:.0f} s (log: {proc.log_path})")


@contextlib.contextmanager
def stopped_on_interrupt(proc: ManagedProcess, timeout_s: float = 10.0) -> Iterator[None]:
    """A server still starting is stopped (whole group) when Ctrl-C, SIGTERM or SIGHUP ends the
    block, then the interrupt goes on: nothing is left running behind an interrupted start."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        with signals_ignored():
            stop(proc, timeout_s)
        raise


def stop(proc: ManagedProcess, timeout_s: float = 10.0) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left after ``timeout_s``."""
    stop_group(proc.process.pid, leader=proc.process, timeout_s=timeout_s)


def stop_group(
    pgid: int, leader: subprocess.Popen[bytes] | None = None, timeout_s: float = 10.0
) -> None:
    """SIGTERM every process of group ``pgid``, SIGKILL the rest after ``timeout_s``."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not signal_group(pgid, sig) or group_gone(pgid, wait_s, leader):
            break
    if leader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=1)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_gone(pgid: int, wait_s: float, leader: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait up to ``wait_s`` for every process of the group to exit."""
    deadline = time.monotonic() + wait_s
    while True:
        if leader is not None:
            leader.poll()  # reap the leader: a zombie would keep the group "alive"
        if not signal_group(pgid, 0):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise SystemExit (as Ctrl-C raises
    KeyboardInterrupt), so cleanup in ``finally`` runs for every way a user stops us.

    A signal ignored when the block starts stays ignored: started under ``nohup``, a closed
    terminal (SIGHUP) must not stop a server.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig, handler in previous.items():
        if handler != signal.SIG_IGN:
            signal.signal(sig, _exit)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While cleaning up, a second Ctrl-C, SIGTERM or SIGHUP must not cut the cleanup short:
    they are ignored until the block ends (keep the block bounded, e.g. by a SIGKILL)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        _restore(saved)


def _restore(handlers: Mapping[signal.Signals, Any]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def running(proc: ManagedProcess) -> Iterator[ManagedProcess]:
    """Stop the server however the block ends: normally, Ctrl-C, SIGTERM or SIGHUP."""
    with stop_on_signals():
        try:
            yield proc
        finally:
            stop(proc)


def wait_forever(proc: ManagedProcess, poll_s: float = 0.5) -> int:
    """Block until the server exits by itself (returns its code) or Ctrl-C/SIGTERM."""
    while proc.alive():
        time.sleep(poll_s)
    return int(proc.process.returncode or 0)
