"""``mlopsbench server dagster`` as a user runs it: ``dagster dev`` on 127.0.0.1, stopped whole.

The slow test materialises a run into a home, starts the real server on that home from the CLI,
finds the run through the GraphQL API and in the UI page rendered by headless Chromium, then
sends SIGTERM and checks that no process of the group survives and the port is free. The fast
tests run the real CLI command with ``dagster dev`` replaced by sleeping processes (one with a
child of its own, like a code server), for SIGHUP and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mlopsbench.result import RunRequest
from mlopsbench.support.net import free_port, port_in_use
from mlopsbench.tools.dagster import adapter, server
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

READY_LINE = "stops the webserver"  # the CLI's last line once the server is up
START_TIMEOUT_S = 240.0

# The CLI command with ``dagster dev`` swapped for sleepers in a group of their own.
_FAKE_SERVER = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path

    from mlopsbench.support.processes import spawn
    from mlopsbench.tools.dagster import server

    SLEEP = "import time; time.sleep(600)"
    FORKS = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); " % SLEEP

    def fake_start(home, port, host="127.0.0.1", timeout_s=0.0):
        home.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-c", FORKS + SLEEP]
        return spawn("dagster dev", args, f"http://{host}:{port}", home / "dev.log", {})

    server.start_dev = fake_start

    from mlopsbench.cli import app

    app(["server", "dagster", "--port", sys.argv[1], "--home", sys.argv[2]])
    """
)


def _cli(
    args: list[str], out: Path, cwd: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec_fn,
        )


def _wait_for_line(proc: subprocess.Popen[bytes], out: Path, line: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in out.read_text(errors="replace"):
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited with {proc.returncode}: {out.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {line!r} after {timeout_s:.0f} s: {out.read_text()[-2000:]}")
        time.sleep(0.2)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _stop_and_check(
    proc: subprocess.Popen[bytes], sig: signal.Signals, out: Path, expect_members: int
) -> None:
    """Send ``sig`` to the CLI; it exits 128+sig and leaves no process of the group behind."""
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert len(descendants) >= expect_members, descendants
    pgid = os.getpgid(descendants[0].pid)
    assert pgid != os.getpgid(proc.pid)  # dagster dev runs in a group of its own
    try:
        proc.send_signal(sig)
        code = proc.wait(timeout=90)
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, f"{sig.name} left {alive}"
        assert not _group_members(pgid)
        expected = 128 + sig if sig != signal.SIGINT else 130
        assert code == expected, out.read_text()[-2000:]
        text = out.read_text(errors="replace")
        assert "stopping Dagster" in text and "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
        for member in descendants:
            with contextlib.suppress(psutil.Error):
                member.kill()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_cli_stops_the_whole_group_on_signal(
    tmp_path: Path, sig: signal.Signals, as_in_a_terminal: Callable[[], None]
) -> None:
    out = tmp_path / "cli.out"
    args = [sys.executable, "-c", _FAKE_SERVER, str(free_port()), str(tmp_path / "home")]
    proc = _cli(args, out, tmp_path, preexec_fn=as_in_a_terminal)
    _wait_for_line(proc, out, READY_LINE, timeout_s=120)
    time.sleep(0.5)  # the stand-in's own child is up
    _stop_and_check(proc, sig, out, expect_members=2)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_cli_rejects_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "server", "dagster", "--port", port],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "65535" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mlopsbench", "server", "dagster", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_refuses_a_public_interface(tmp_path: Path) -> None:
    from mlopsbench.errors import ConfigError

    with pytest.raises(ConfigError, match="refusing to bind"):
        server.start_dev(tmp_path / "home", free_port(), host="0.0.0.0")
    assert not (tmp_path / "home").exists()


# ---------------------------------------------------------------------------------------------
# the real server
# ---------------------------------------------------------------------------------------------


def _rendered_dom(url: str, work: Path) -> str:
    from mlopsbench.report.chromium import find_chromium, headless_command

    command = [
        *headless_command(find_chromium(), work / "chromium-profile", "1400,900"),
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


@pytest.mark.slow
def test_server_shows_a_materialised_run_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = DigitsConfig(
        model="simple", epochs=1, threshold=0.5, data=DigitsDataConfig(test_fraction=0.1)
    )
    result = adapter.run(RunRequest("digits", cfg, tmp_path / "run"))
    assert result.status == "ok", result.error
    home, run_id = Path(result.tool_info["dagster_home"]), result.tool_info["run_id"]

    port = free_port()
    out = tmp_path / "cli.out"
    args = [sys.executable, "-m", "mlopsbench", "server", "dagster"]
    proc = _cli([*args, "--port", str(port), "--home", str(home)], out, tmp_path)
    try:
        _wait_for_line(proc, out, READY_LINE, timeout_s=START_TIMEOUT_S)
        url = f"http://127.0.0.1:{port}"
        runs = {run["runId"]: run for run in server.list_runs(url)}
        assert runs[run_id]["jobName"] == "digits_pipeline"
        assert runs[run_id]["status"] == "SUCCESS"
        dom = _rendered_dom(f"{url}/runs/{run_id}", tmp_path)
        assert run_id[:8] in dom and "digits_pipeline" in dom
        assert "digits_quality_gate" in dom  # the check's step, in the run's timeline
    finally:
        if proc.poll() is None:
            _stop_and_check(proc, signal.SIGTERM, out, expect_members=3)
    assert not port_in_use(port)
