"""Time the Airflow api-server + scheduler + dag-processor to healthy (``--measure-servers``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 360.0


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start the three processes on a free loopback port (home under ``work``), stop them."""
    import psutil

    from mlopsbench.support.net import free_port
    from mlopsbench.tools.airflow import server

    settings = server.ServerSettings(home=work, port=free_port())
    started = time.perf_counter()
    running = server.start(settings)
    try:
        server.wait_ready(running, READY_TIMEOUT_S)
        return {
            "healthy_s": time.perf_counter() - started,
            "processes": len(psutil.Process().children(recursive=True)),
            "detail": "api-server + scheduler + dag-processor, SQLite "
            f"(db migrate {running.migrate_s:.1f} s)",
        }
    finally:
        server.stop(running)
