"""Start one worker process and measure it from the outside.

- wall time: ``perf_counter`` around spawn .. reap;
- CPU time: user + system seconds from ``os.wait4`` (child + reaped descendants): far less
  sensitive than wall time to other load on a shared machine;
- ``peak_rss_mb``: ``ru_maxrss`` from ``os.wait4`` for that child (the largest single process
  among the child and the descendants it reaped: Metaflow steps, KFP components...);
- ``tree_peak_rss_mb``: the largest *sum* of RSS over the child's process tree, sampled with
  psutil while it runs (what a multi-process tool really holds at once).

The child gets its own session, so a timeout or Ctrl-C stops its whole process group (steps,
servers it started) and nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.support.processes import signal_group

POLL_S = 0.3
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class ChildOutcome:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    tree_peak_rss_mb: float
    timed_out: bool = False
    cpu_s: float = 0.0  # user + system CPU of the child and its reaped descendants


def _tree_rss_mb(proc: Any) -> float:
    """Sum of RSS over a psutil.Process and all its descendants (0 when it is gone)."""
    import psutil

    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total / (1024 * 1024)


def _stop_group(pgid: int, leader_alive: bool = False) -> tuple[int, int, Any] | None:
    """SIGTERM the child's process group, SIGKILL what is left after a grace period.

    With ``leader_alive`` the leader (our child) is reaped here and its wait4 triple returned:
    an unreaped zombie leader would keep the group "alive" for the whole grace period.
    """
    reaped = None
    if signal_group(pgid, signal.SIGTERM):
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if leader_alive and reaped is None:
                pid, status, usage = os.wait4(pgid, os.WNOHANG)
                if pid:
                    reaped = (pid, status, usage)
            if not signal_group(pgid, 0):
                break
            time.sleep(0.1)
        signal_group(pgid, signal.SIGKILL)
    if leader_alive and reaped is None:
        try:
            reaped = os.wait4(pgid, 0)
        except ChildProcessError:
            reaped = None
    return reaped


def run_child(
    args: list[str],
    *,
    python: Path | str | None = None,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float | None = None,
    on_poll: Callable[[float], None] | None = None,
) -> ChildOutcome:
    """Run ``python -m <args>`` in a new session (``python``: a tool environment's
    interpreter; default this one); return its measurements."""
    import psutil

    with open(log_path, "ab") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(python or sys.executable), "-m", *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            handle: psutil.Process | None = psutil.Process(proc.pid)
        except psutil.Error:  # already gone: wait4 below still has its numbers
            handle = None
        tree_peak = 0.0
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                elapsed = time.perf_counter() - t0
                if timeout_s is not None and elapsed > timeout_s:
                    timed_out = True
                    reaped = _stop_group(proc.pid, leader_alive=True)
                    if reaped is None:
                        raise ChildProcessError(f"lost worker process {proc.pid}")
                    pid, status, usage = reaped
                    break
                if handle is not None:
                    tree_peak = max(tree_peak, _tree_rss_mb(handle))
                if on_poll is not None:
                    on_poll(elapsed)
                time.sleep(POLL_S)
        except BaseException:
            # Ctrl-C (or any error here): never leave the child or its steps running.
            if proc.returncode is None:
                _stop_group(proc.pid, leader_alive=True)
            proc.returncode = -1
            raise
        wall = time.perf_counter() - t0
        # Reaped by wait4 above: tell Popen so it never waits on a recycled pid.
        proc.returncode = os.waitstatus_to_exitcode(status)
    # The group may outlive its leader (daemonised steps, servers): stop what is left.
    _stop_group(proc.pid)
    peak = usage.ru_maxrss / 1024.0  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return ChildOutcome(proc.returncode, wall, peak, max(tree_peak, peak), timed_out, cpu)
