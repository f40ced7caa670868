"""Time ``mlflow server`` from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start the tracking server on a free loopback port (SQLite under ``work``), stop it."""
    from mlopsbench.support import probes, processes
    from mlopsbench.support.net import free_port
    from mlopsbench.tools.mlflow import server

    return probes.time_to_healthy(
        lambda: server.start_tracking_server(free_port(), root=work),
        processes.stop,
        "mlflow server, SQLite",
    )
