"""Materialising a use case's job in-process, from the harness.

The code location is ``pipeline/definitions.py``; a use case's job is ``<use case>_pipeline``
and its settings the resource ``<use case>_settings``, so a new use case needs only its assets
there. The run config is built from the core config (``flat_values``: the settings resource's
fields are the config's flat keys, None where the core allows it) plus the ``mlflow`` resource's
tracking URI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import flat_values

DEFINITIONS_MODULE = "mlopsbench.tools.dagster.pipeline.definitions"


def job_name(usecase: str) -> str:
    return f"{usecase}_pipeline"


def settings_key(usecase: str) -> str:
    return f"{usecase}_settings"


def load_definitions() -> Any:
    """The code location's ``Definitions`` (importing it imports Dagster)."""
    import importlib

    return importlib.import_module(DEFINITIONS_MODULE).defs


def resolve_job(defs: Any, usecase: str) -> Any:
    """The use case's job, or a one-line ConfigError when the code location has none."""
    name = job_name(usecase)
    if name not in {job.name for job in defs.jobs or ()}:
        raise ConfigError(
            f"no Dagster job {name} for the {usecase} use case in {DEFINITIONS_MODULE}"
        )
    return defs.resolve_job_def(name)


def run_config(
    usecase: str, cfg: Any, tracking_uri: str | None, show_progress: bool
) -> dict[str, Any]:
    """The run config: the use case's settings, where MLflow is (empty: not logged), and how
    much of the event stream the console shows (the event log keeps all of it)."""
    return {
        "resources": {
            settings_key(usecase): {"config": flat_values(cfg)},
            "mlflow": {"config": {"tracking_uri": tracking_uri or ""}},
        },
        "loggers": {"console": {"config": {"log_level": "INFO" if show_progress else "CRITICAL"}}},
    }


@dataclass(frozen=True)
class Materialised:
    """One in-process execution of a job: its run id, and when it was called and returned."""

    run_id: str
    started: float  # time.time() as execute_in_process was called (to compare with events)
    returned: float
    seconds: float


def materialise(
    job: Any, instance: Any, config: dict[str, Any], tags: dict[str, str]
) -> Materialised:
    """``execute_in_process`` against the persistent instance; a failed run does not raise
    (its events say why)."""
    began, started = time.perf_counter(), time.time()
    result = job.execute_in_process(
        run_config=config, instance=instance, raise_on_error=False, tags=tags
    )
    return Materialised(result.run_id, started, time.time(), time.perf_counter() - began)
