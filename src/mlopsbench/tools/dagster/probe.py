"""Time ``dagster dev`` from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start ``dagster dev`` on a free loopback port (home under ``work``), stop it."""
    from mlopsbench.support import probes
    from mlopsbench.support.net import free_port
    from mlopsbench.tools.dagster import server

    return probes.time_to_healthy(
        lambda: server.start_dev(work / "dagster_home", free_port()),
        server.stop_dev,
        "dagster dev: webserver + daemon + code server, SQLite",
    )
