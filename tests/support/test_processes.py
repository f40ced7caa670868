"""Servers as process groups: an interrupted start leaves nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlopsbench.support import processes


def _sleeper(tmp_path: Path) -> processes.ManagedProcess:
    """A 'server' that never answers: a process group with a child, like a server's workers."""
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"
    return processes.spawn(
        "sleeper", [sys.executable, "-c", code], "http://127.0.0.1:9", tmp_path / "log", {}
    )


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_wait_for_health_stops_the_whole_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]
) -> None:
    proc = _sleeper(tmp_path)

    def _interrupted(url: str, *args: object, **kwargs: object) -> bool:
        raise interrupt()  # Ctrl-C (or SIGTERM, as stop_on_signals raises it) while polling

    monkeypatch.setattr(processes, "http_ok", _interrupted)
    try:
        with pytest.raises(interrupt):
            processes.wait_healthy(proc, "/health", timeout_s=30)
        # The start was interrupted before anybody's `running` block: the group went anyway.
        assert not proc.alive()
        assert processes.group_gone(proc.process.pid, 5.0, proc.process)
    finally:
        processes.stop(proc, timeout_s=1.0)
