"""Where a Prefect run keeps its files, and the environment its processes start with.

Prefect reads its settings (home, API URL, result storage) from the environment when it is
first imported, so every process that imports it — the worker that runs a flow, the one that
reads a run back, the server — is started with :func:`prefect_env` and nothing is imported
here. Each run gets its own ``PREFECT_HOME``: the user's profiles, database and API URL are
never read or written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlopsbench.errors import ConfigError

API_URL_ENV = "PREFECT_API_URL"
API_URL_OPTION = "prefect_api_url"  # RunRequest.options: run against this server's API
# A temporary API on a busy 2-core machine took 13-25 s to answer (Prefect's default wait: 20).
EPHEMERAL_STARTUP_TIMEOUT_S = 180

# Turned off for every Prefect process: usage analytics (client and server) and the
# telemetry the ephemeral server would try to send; MLflow's, for pipelines that log there.
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


@dataclass(frozen=True)
class RunLayout:
    """The files of one run, all under its folder."""

    root: Path

    @property
    def home(self) -> Path:
        """``PREFECT_HOME``: profiles and, without a server, the run's SQLite database."""
        return self.root / "prefect_home"

    @property
    def database(self) -> Path:
        return self.home / "prefect.db"

    @property
    def results(self) -> Path:
        """Persisted task and flow results (local result storage)."""
        return self.root / "results"

    @property
    def work_dir(self) -> Path:
        """The flows' ``work_dir``: ``flow-runs/<flow run id>/`` holds what the tasks write."""
        return self.root / "flow-runs"

    @property
    def log(self) -> Path:
        return self.root / "prefect.log"


def api_url(options: Mapping[str, str]) -> str | None:
    """The Prefect API to run against: the option, else ``$PREFECT_API_URL``; None: a
    temporary local API for the run (Prefect's ephemeral mode)."""
    url = (options.get(API_URL_OPTION) or os.environ.get(API_URL_ENV) or "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"Prefect API URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def prefect_env(
    layout: RunLayout,
    api: str | None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of a Prefect process confined to ``layout`` (and ``api``, if given)."""
    env = dict(os.environ if base is None else base)
    env.pop(API_URL_ENV, None)
    env.update(QUIET)
    env.update(
        {
            "PREFECT_HOME": str(layout.home),
            "PREFECT_PROFILES_PATH": str(layout.home / "profiles.toml"),
            "PREFECT_LOCAL_STORAGE_PATH": str(layout.results),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(EPHEMERAL_STARTUP_TIMEOUT_S),
            # The flow decides from its mlflow_uri parameter alone, not from the caller's env.
            "MLFLOW_TRACKING_URI": "",
        }
    )
    if api:
        env[API_URL_ENV] = api
    else:
        env["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "true"
    env.update(extra or {})
    return env
