"""Starting the worker that runs a flow (or reads one back), and the flow's parameters.

The worker runs in its own process group: the temporary API Prefect starts for a run is its
child, so stopping the group after the worker (or on a timeout, or Ctrl-C) leaves no server
behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.support import workers
from mlopsbench.support.net import check_health
from mlopsbench.support.uris import redact_uri
from mlopsbench.tools.prefect.environment import RunLayout
from mlopsbench.usecases.common.params import flat_values

WORKER_MODULE = "mlopsbench.tools.prefect.worker"
PIPELINE_DIR = Path(__file__).resolve().parent / "pipeline"


def flow_file(usecase: str) -> Path:
    """``pipeline/<use case>_flow.py``: a new use case needs only its flow file there."""
    path = PIPELINE_DIR / f"{usecase}_flow.py"
    if not path.is_file():
        raise ConfigError(f"no Prefect flow for the {usecase} use case (pipeline/{path.name})")
    return path


def flow_parameters(cfg: Any, layout: RunLayout, tracking_uri: str | None) -> dict[str, Any]:
    """The flow's parameters: every core setting in ``config``, plus where files and MLflow go."""
    return {
        "config": flat_values(cfg),
        "work_dir": str(layout.work_dir),
        "mlflow_uri": tracking_uri or None,
    }


def check_api(api_url: str, timeout_s: float = 3.0) -> None:
    """A Prefect server's API answers ``GET /health``; else one line, before anything runs."""
    check_health(api_url, "/health", f"Prefect API {redact_uri(api_url)}", timeout_s)


def run_worker(
    command: str,
    request: dict[str, Any],
    env: Mapping[str, str],
    folder: Path,
    log_path: Path,
    timeout_s: float,
) -> dict[str, Any]:
    """``python -m mlopsbench.tools.prefect.worker COMMAND`` on ``request``; its JSON result (see
    :func:`mlopsbench.support.workers.run_worker`: the worker and the temporary API it started
    go with its process group, also on Ctrl-C)."""
    return workers.run_worker(
        WORKER_MODULE,
        command,
        request,
        what="Prefect worker",
        folder=folder,
        env=env,
        log_path=log_path,
        timeout_s=timeout_s,
    )
