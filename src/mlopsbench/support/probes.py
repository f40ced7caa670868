"""Time a tool's server from start to healthy (``compare --measure-servers``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

Server = TypeVar("Server")


def time_to_healthy(
    start: Callable[[], Server], stop: Callable[[Server], None], detail: str
) -> dict[str, Any]:
    """Run ``start`` (which returns once the server answers), count its processes, ``stop`` it.

    The process count is taken while the server is up: it is what a user leaves running.
    """
    import psutil

    started = time.perf_counter()
    server = start()
    try:
        return {
            "healthy_s": time.perf_counter() - started,
            "processes": len(psutil.Process().children(recursive=True)),
            "detail": detail,
        }
    finally:
        stop(server)
