"""``mlopsbench server prefect``: a Prefect server on 127.0.0.1 whose UI shows the runs made
against it, stopped as a whole group by SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from mlopsbench.result import RunRequest
from mlopsbench.support.net import free_port, port_in_use
from mlopsbench.tools.prefect import adapter

READY_LINE = "Ctrl-C stops the server"  # the CLI's last line once the server is healthy


def _wait_for_line(proc: subprocess.Popen[bytes], out: Path, line: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in out.read_text(errors="replace"):
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited with {proc.returncode}: {out.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {line!r} after {timeout_s:.0f} s: {out.read_text()[-2000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def _cli_server(tmp_path: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The real CLI command in a child process (its own session, as from a terminal)."""
    out = tmp_path / "server.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlopsbench", "server", "prefect"),
                *("--port", str(port), "--home", str(tmp_path / "home")),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, out
    finally:
        _stop_leftovers(proc)


def _stop_leftovers(proc: subprocess.Popen[bytes]) -> None:
    """After a failed check nothing may outlive the test: the server runs in a process group
    of its own, so the CLI is asked to stop it first (SIGTERM), then whatever is left is killed."""
    if proc.poll() is not None:
        return
    descendants = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for member in descendants:
        with contextlib.suppress(psutil.Error):
            member.kill()


def _chromium() -> str:
    from mlopsbench.report.chromium import find_chromium

    try:
        return find_chromium()
    except SystemExit as missing:  # its one line says how to install it
        pytest.skip(str(missing))


def _chromium_dom(url: str, profile: Path) -> str:
    """The page as the UI's JavaScript rendered it (headless Chromium)."""
    from mlopsbench.report.chromium import headless_command

    command = headless_command(_chromium(), profile, "1400,1000")
    done = subprocess.run(
        [*command, "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_ui_shows_a_run_made_against_the_server(
    tmp_path: Path, make_request: Callable[..., RunRequest], small_digits: object
) -> None:
    import requests

    _chromium()  # before the server starts: without a browser the UI cannot be checked
    port = free_port()
    with _cli_server(tmp_path, port) as (proc, out):
        _wait_for_line(proc, out, READY_LINE, timeout_s=240)
        members = psutil.Process(proc.pid).children(recursive=True)
        api = f"http://127.0.0.1:{port}/api"
        assert f"PREFECT_API_URL={api}" in out.read_text()

        result = adapter.run(
            make_request("digits-on-server", small_digits, options={"prefect_api_url": api})
        )
        assert result.status == "ok", result.error
        assert result.tool_info["server_api_url"] == api
        flow_run_id = result.tool_info["flow_run_id"]

        # The server's REST API has the run, and so the UI: its page renders the run's name.
        found = requests.post(f"{api}/flow_runs/filter", json={"limit": 10}, timeout=10).json()
        assert {r["id"]: r["state_type"] for r in found}[flow_run_id] == "COMPLETED"
        page = _chromium_dom(f"http://127.0.0.1:{port}/runs/flow-run/{flow_run_id}", tmp_path)
        assert result.tool_info["flow_run_name"] in page
        assert "Completed" in page  # the state badge (the task graph is drawn on a canvas)
        # Evidence is read back from the server, not from a temporary API.
        assert all(adapter.evidence(result).values())

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    _, alive = psutil.wait_procs(members, timeout=15)
    assert not alive, [p.pid for p in alive]
    assert not port_in_use(port)
    assert "stops the server" in out.read_text()


def test_port_out_of_range_is_one_line() -> None:
    from mlopsbench.cli import app

    result = CliRunner().invoke(app, ["server", "prefect", "--port", "70000"])
    assert result.exit_code == 2
    assert "65535" in result.stderr and "Traceback" not in result.output


def test_busy_port_is_one_line(tmp_path: Path) -> None:
    from mlopsbench.cli import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        result = CliRunner().invoke(
            app, ["server", "prefect", "--port", str(port), "--home", str(tmp_path / "home")]
        )
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "home").exists()  # refused before anything was written
