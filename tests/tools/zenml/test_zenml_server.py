"""`mlopsbench server zenml`: ZenML's local dashboard on a run's store, stopped as a group.

The fast tests run the real CLI command in a child process with the ZenML server replaced by a
sleeping Python process that has a child of its own, and stop it with each signal; the slow
test starts the real dashboard over the shared digits run, finds the run through the REST API
and on its page rendered by headless Chromium, then sends SIGTERM to the CLI.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from mlopsbench.result import RunResult
from mlopsbench.support.net import free_port, port_in_use

READY_LINE = "Ctrl-C stops the server"  # the CLI's last line once the dashboard is healthy

# The CLI command with the dashboard swapped for a sleeper that forks (argv: port, folder).
_FAKE_SERVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from mlopsbench.support.processes import spawn
    from mlopsbench.tools.zenml import server

    SLEEP = "import time; time.sleep(600)"
    FORKS = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); " % SLEEP
    folder = Path(sys.argv[2])
    server.find_store = lambda store, runs: folder
    server.start_dashboard = lambda config_dir, port, host: spawn(
        "fake zenml", [sys.executable, "-c", FORKS + SLEEP], "http://x", folder / "log", {}
    )

    from mlopsbench.cli import app

    app(["server", "zenml", "--port", sys.argv[1]])
    """
)


def _as_in_a_terminal() -> None:
    """Ctrl-C and a closed terminal stop the CLI, whatever started the tests (``nohup`` or a
    background job ignore them, and the CLI rightly keeps an ignored signal ignored)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _cli(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_as_in_a_terminal,
        )


def _wait_for_line(proc: subprocess.Popen[bytes], out: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while READY_LINE not in " ".join(out.read_text(errors="replace").split()):
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited with {proc.returncode}: {out.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not ready after {timeout_s:.0f} s: {out.read_text()[-2000:]}")
        time.sleep(0.2)


def _family(proc: subprocess.Popen[bytes], at_least: int, timeout_s: float = 30) -> list[Any]:
    """The CLI and every process below it, once there are ``at_least`` of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        if len(family) >= at_least or time.monotonic() > deadline:
            return family
        time.sleep(0.1)


def _stop_and_check(proc: subprocess.Popen[bytes], sig: int, at_least: int = 2) -> None:
    """Send ``sig`` to the CLI; every process it started must be gone soon after."""
    family = _family(proc, at_least)
    assert len(family) >= at_least, family
    try:
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, f"still running after {signal.Signals(sig).name}: {alive}"
    finally:
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.kill()


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name
)
def test_every_signal_stops_the_whole_group(tmp_path: Path, sig: int) -> None:
    script = tmp_path / "fake_server.py"
    script.write_text(_FAKE_SERVER)
    out = tmp_path / "cli.out"
    proc = _cli([str(script), str(free_port()), str(tmp_path)], out)
    _wait_for_line(proc, out, timeout_s=60)
    _stop_and_check(proc, sig, at_least=3)  # the CLI, the server and the server's own child


def test_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "server", "zenml", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "65535" in done.stderr and "Traceback" not in done.stderr


def test_no_zenml_run_to_show_is_one_line(tmp_path: Path) -> None:
    argv = ["server", "zenml", "--runs", str(tmp_path), "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "no ZenML run under" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_dashboard_shows_the_run_and_stops_on_sigterm(
    digits_run: RunResult, tmp_path: Path
) -> None:
    run_dir = Path(digits_run.tool_info["zenml_config"]).parent
    port = free_port()
    out = tmp_path / "cli.out"
    proc = _cli(["-m", "mlopsbench", "server", "zenml", "--store", str(run_dir),
                 "--port", str(port)], out)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_line(proc, out, timeout_s=240)
        runs = requests.get(f"{url}/api/v1/runs", params={"size": 50}, timeout=30).json()
        assert digits_run.tool_info["run_name"] in [item["name"] for item in runs["items"]]
        page = _rendered(f"{url}/projects/default/runs/{digits_run.tool_info['run_id']}", tmp_path)
        assert digits_run.tool_info["run_name"] in page
        assert "completed" in page and "digits_pipeline" in page
    finally:
        _stop_and_check(proc, signal.SIGTERM)
    assert not port_in_use(port)


def _rendered(url: str, work: Path) -> str:
    """The page as the browser built it (the dashboard is a single-page app)."""
    from mlopsbench.report.chromium import find_chromium, headless_command

    command = [
        *headless_command(find_chromium(), work / "chromium-profile", "1400,1000"),
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


@pytest.mark.slow
def test_probe_times_the_dashboard_to_healthy(tmp_path: Path) -> None:
    from mlopsbench.tools.zenml import probe

    measured = probe.time_to_healthy(tmp_path)
    assert measured["healthy_s"] > 0 and measured["processes"] >= 1
    assert (tmp_path / "zenml" / "config.yaml").is_file()  # a new store, under work
