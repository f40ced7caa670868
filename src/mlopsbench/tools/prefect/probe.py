"""Time ``prefect server start`` from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start the server on a free loopback port (home and SQLite under ``work``), stop it."""
    from mlopsbench.support import probes, processes
    from mlopsbench.support.net import free_port
    from mlopsbench.tools.prefect import server

    return probes.time_to_healthy(
        lambda: server.start_server(free_port(), home=work),
        processes.stop,
        "prefect server start (API + UI + services), SQLite",
    )
