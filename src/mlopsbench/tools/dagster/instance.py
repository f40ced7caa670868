"""The isolated Dagster instance a run is materialised against: ``DAGSTER_HOME`` under the run
folder, so the same runs show up in ``dagster dev`` started with that home.

A home holds ``dagster.yaml`` (telemetry off), ``history/`` (runs and their event logs, SQLite),
``storage/`` (the IO manager's stored asset values, compute logs) and ``artifacts/`` (the files
the assets write). ``DagsterInstance.get()`` reads ``$DAGSTER_HOME``, so the variable is set for
the duration of :func:`open_instance` only and restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError

HOME_DIR = "dagster_home"  # in a run folder
INSTANCE_YAML = "dagster.yaml"
# Dagster's telemetry writes usage events under the home; nothing leaves this machine.
SETTINGS = "telemetry:\n  enabled: false\n"


def prepare_home(home: Path) -> Path:
    """Create the home with telemetry off (an existing ``dagster.yaml`` is kept); return it."""
    home = home.expanduser().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        settings = home / INSTANCE_YAML
        if not settings.is_file():
            settings.write_text(SETTINGS)
    except OSError as exc:
        raise ConfigError(f"cannot create DAGSTER_HOME {home}: {exc.strerror}") from None
    return home


@contextmanager
def open_instance(home: Path) -> Iterator[Any]:
    """The persistent ``DagsterInstance`` of ``home`` (disposed of afterwards)."""
    from dagster import DagsterInstance

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            yield instance
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


def instance_env(home: Path) -> dict[str, str]:
    """Environment for Dagster processes using ``home`` (``dagster dev``, the CLI)."""
    return {"DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
