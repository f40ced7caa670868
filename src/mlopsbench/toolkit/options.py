"""The harness's per-run options (``RunRequest.options``) as every adapter reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlopsbench.errors import ConfigError


def thread_env(options: Mapping[str, Any]) -> dict[str, str]:
    """``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for the tool's processes when ``threads`` is set.

    On a shared machine ("1"), OpenMP's spinning threads slow t-SNE and torch a lot.
    """
    threads = options.get("threads")
    if not threads:
        return {}
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def positive_float_option(options: Mapping[str, Any], key: str, default: float) -> float:
    """``options[key]`` as a number > 0 (a timeout, a poll interval), or a one-line ConfigError."""
    raw = options.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"option {key} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"option {key} must be > 0, got {value}")
    return value
