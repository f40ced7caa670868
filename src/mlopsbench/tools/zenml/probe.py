"""Time ZenML's local dashboard from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def time_to_healthy(work: Path) -> dict[str, Any]:
    """Start the dashboard on a free loopback port over a new store under ``work``, stop it.

    The store is created first (by the dashboard's preparation, untimed): what is timed is the
    server process from start to ``/health``.
    """
    from mlopsbench.support import probes, processes
    from mlopsbench.support.net import free_port
    from mlopsbench.tools.zenml import server
    from mlopsbench.tools.zenml.launch import CONFIG_DIR

    config_dir = (work / CONFIG_DIR).resolve()
    server.prepare_dashboard(config_dir)
    return probes.time_to_healthy(
        lambda: server.start_dashboard(config_dir, free_port(), prepare=False),
        processes.stop,
        "zenml login --local --blocking (one uvicorn process), SQLite",
    )
