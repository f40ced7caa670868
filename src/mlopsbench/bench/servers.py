"""Time-to-healthy of the tool servers this project can start (``compare --measure-servers``).

Each probe runs in its own process (``python -m mlopsbench.bench.servers TOOL WORKDIR OUT``) and
drives the tool's own ``tools/<tool>/server.py`` (imported by name, so the harness never imports
a tool): start on 127.0.0.1 and a free port, wait until healthy, count the processes serving it,
stop. Tools without a startable server (plain, Metaflow, KFP) are not probed; the report lists
the services they would need from ``report/services.toml``.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 420.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serving_processes() -> int:
    import psutil

    return len(psutil.Process().children(recursive=True))


def _probe_mlflow(work: Path) -> dict[str, Any]:
    server = importlib.import_module("mlopsbench.tools.mlflow.server")
    t0 = time.perf_counter()
    proc = server.start_tracking_server(free_port(), root=work)
    try:
        healthy = time.perf_counter() - t0
        return {
            "healthy_s": healthy,
            "processes": _serving_processes(),
            "detail": "mlflow server, SQLite",
        }
    finally:
        server.stop(proc)


def _probe_airflow(work: Path) -> dict[str, Any]:
    server = importlib.import_module("mlopsbench.tools.airflow.server")
    settings = server.ServerSettings(home=work, port=free_port())
    t0 = time.perf_counter()
    running = server.start(settings)
    try:
        server.wait_ready(running, PROBE_TIMEOUT_S - 60)
        healthy = time.perf_counter() - t0
        return {
            "healthy_s": healthy,
            "processes": _serving_processes(),
            "detail": f"api-server + scheduler + dag-processor, SQLite (db migrate {running.migrate_s:.1f} s)",
        }
    finally:
        server.stop(running)


PROBES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "mlflow": _probe_mlflow,
    "airflow": _probe_airflow,
}


def measure_servers(tools: Iterable[str], work: Path) -> list[dict[str, Any]]:
    """One ``server`` row per probe-able tool, each probe in its own process."""
    from mlopsbench.bench.spawn import run_child

    rows = []
    for tool in [t for t in tools if t in PROBES]:
        folder = work / tool
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "probe.json"
        outcome = run_child(
            ["mlopsbench.bench.servers", tool, str(folder), str(out)],
            cwd=folder,
            env=_env(),
            log_path=folder / "probe.log",
            timeout_s=PROBE_TIMEOUT_S,
        )
        try:
            row = json.loads(out.read_text())
        except (OSError, ValueError):
            reason = "timed out" if outcome.timed_out else f"probe exited {outcome.returncode}"
            row = {"tool": tool, "error": f"{reason} (log: {folder / 'probe.log'})"}
        rows.append(
            {"kind": "server", "healthy_s": None, **row, "peak_rss_mb": outcome.tree_peak_rss_mb}
        )
    return rows


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}


def main(argv: list[str]) -> int:
    tool, work, out = argv[0], Path(argv[1]), Path(argv[2])
    try:
        row = {"tool": tool, "error": None, **PROBES[tool](work)}
    except Exception as exc:  # recorded as the probe's result; the report shows it
        row = {"tool": tool, "error": " ".join(str(exc).split())[:300] or type(exc).__name__}
    from mlopsbench.result import write_json_atomic

    write_json_atomic(out, row)
    return 0 if row["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
