"""Time ``mlflow server`` from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start the tracking server on a free loopback port (SQLite under ``work``), stop it."""
    import psutil

    from mlopsbench.support import processes
    from mlopsbench.support.net import free_port
    from mlopsbench.tools.mlflow import server

    started = time.perf_counter()
    proc = server.start_tracking_server(free_port(), root=work)
    try:
        return {
            "healthy_s": time.perf_counter() - started,
            "processes": len(psutil.Process().children(recursive=True)),
            "detail": "mlflow server, SQLite",
        }
    finally:
        processes.stop(proc)
