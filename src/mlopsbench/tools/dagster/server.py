"""A local Dagster deployment on 127.0.0.1: ``dagster dev`` with the project's code location.

``dagster dev`` runs the webserver (UI + GraphQL), the daemon and a code server that loads
``pipeline/definitions.py``; the code server talks gRPC over a Unix socket, so the only TCP port
is the webserver's, bound to 127.0.0.1. All of them run in one process group of our own, so a
stop takes every one: Dagster turns SIGTERM into the clean shutdown Ctrl-C gives (about 10 s on
these machines), and whatever is left after :data:`STOP_TIMEOUT_S` is killed.

The home (``DAGSTER_HOME``, telemetry off) holds the runs: the ones materialised in-process by
``mlopsbench run digits --tool dagster`` in that home too, and the ones launched from the UI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlopsbench.errors import ServerError
from mlopsbench.support.net import LOCALHOST, check_free, check_host
from mlopsbench.support.processes import ManagedProcess, spawn, stop, wait_healthy
from mlopsbench.tools.dagster.instance import instance_env, prepare_home
from mlopsbench.tools.dagster.launch import DEFINITIONS_MODULE

DEFAULT_PORT = 3000
HEALTH_PATH = "/server_info"
READY_TIMEOUT_S = 180.0  # ~8-15 s on a quiet machine; the code server imports torch
STOP_TIMEOUT_S = 30.0
LOG_FILE = "dagster-dev.log"


def default_home() -> Path:
    return Path.cwd() / "runs" / "dagster"


def start_dev(
    home: Path, port: int, host: str = LOCALHOST, timeout_s: float = READY_TIMEOUT_S
) -> ManagedProcess:
    """``dagster dev`` with the project's definitions and ``home``; waits until healthy."""
    check_host(host)
    check_free(port)
    home = prepare_home(home)
    args = [
        *(sys.executable, "-m", "dagster", "dev"),
        *("-m", DEFINITIONS_MODULE, "-h", host, "-p", str(port)),
    ]
    url = f"http://{host}:{port}"
    proc = spawn("dagster dev", args, url, home / "logs" / LOG_FILE, _env(home), cwd=home)
    # A failed or interrupted start stops the group with Dagster's clean-shutdown time.
    wait_healthy(proc, HEALTH_PATH, timeout_s, stop_timeout_s=STOP_TIMEOUT_S)
    return proc


def stop_dev(proc: ManagedProcess) -> None:
    """SIGTERM the whole group (Dagster's clean shutdown), SIGKILL what is left after 30 s."""
    stop(proc, timeout_s=STOP_TIMEOUT_S)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, **instance_env(home)}


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One GraphQL request to the webserver; a one-line ServerError for anything but data."""
    import requests

    try:
        response = requests.post(
            f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
    except requests.RequestException as exc:
        raise ServerError(f"Dagster GraphQL API {url} unreachable ({type(exc).__name__})") from None
    body = response.json() if response.content else {}
    if response.status_code != 200 or body.get("errors"):
        detail = (body.get("errors") or [{}])[0].get("message", response.text[:200])
        raise ServerError(f"Dagster GraphQL API: HTTP {response.status_code} {detail}")
    return dict(body["data"])


RUNS_QUERY = """
query Runs {
  runsOrError {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on PythonError { message }
  }
}
"""


def list_runs(url: str) -> list[dict[str, Any]]:
    """The instance's runs as the webserver reports them (newest first)."""
    answer = graphql(url, RUNS_QUERY)["runsOrError"]
    if answer["__typename"] != "Runs":
        raise ServerError(f"Dagster GraphQL API: {answer.get('message', answer['__typename'])}")
    return list(answer["results"])
