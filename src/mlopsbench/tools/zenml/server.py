"""ZenML's local dashboard on loopback: ``zenml login --local --blocking`` on a run's store.

ZenML 0.98 serves its dashboard and REST API from one process (uvicorn, the ZenML server
app) over the store the client uses. ``zenml login --local`` alone starts it as a daemon that
outlives the command and must be stopped with ``zenml logout --local``; ``--blocking`` keeps
it in the foreground instead, as the one process of its own process group, so stopping the
group stops all of it (:mod:`mlopsbench.support.processes`). The dashboard needs no login
(the local server's ``NO_AUTH`` scheme).

Each ``mlopsbench run ... --tool zenml`` keeps its store in its run folder (``<run>/zenml``):
the dashboard shows the store of one run folder, the newest under ``runs/`` by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlopsbench.errors import ConfigError
from mlopsbench.support.net import LOCALHOST, check_free, check_host
from mlopsbench.support.processes import ManagedProcess, spawn, wait_healthy
from mlopsbench.tools.zenml.launch import CONFIG_DIR, Layout, run_worker, zenml_env

DEFAULT_PORT = 8237  # ZenML's own default for the local server
READY_TIMEOUT_S = 120.0  # ~4 s on a quiet machine, far more with 8 jobs on 2 cores
ZENML_CLI = "import sys; from zenml_cli import cli; sys.exit(cli())"  # the `zenml` script
LOG_FILE = "zenml-server.log"


def find_store(store: Path | None, runs: Path) -> Path:
    """The ZenML configuration folder to serve: ``store`` (a run folder holding ``zenml/``, or
    that folder itself), else the newest ZenML run folder under ``runs``."""
    if store is not None:
        for candidate in (store / CONFIG_DIR, store):
            if (candidate / "config.yaml").is_file():
                return candidate.resolve()
        raise ConfigError(f"no ZenML store in {store} (expected {store}/{CONFIG_DIR}/config.yaml)")
    found = sorted(
        runs.glob(f"*-zenml-*/{CONFIG_DIR}/config.yaml"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise ConfigError(
            f"no ZenML run under {runs}/: run `mlopsbench run digits --tool zenml` first, "
            "or pass --store RUN_FOLDER"
        )
    return found[-1].parent.resolve()


def prepare_dashboard(config_dir: Path) -> dict[str, object]:
    """Answer the dashboard's first-visit survey for the store's user (no email, opted out),
    creating the store if it does not exist yet; returns the user and how many runs it holds."""
    layout = Layout(config_dir.parent)
    return run_worker("dashboard", {}, layout, zenml_env(config_dir), timeout_s=READY_TIMEOUT_S)


def start_dashboard(
    config_dir: Path,
    port: int,
    host: str = LOCALHOST,
    timeout_s: float = READY_TIMEOUT_S,
    prepare: bool = True,
) -> ManagedProcess:
    """``zenml login --local --blocking`` on ``config_dir``'s store, healthy, on ``host:port``."""
    check_host(host)
    check_free(port)
    if prepare:
        prepare_dashboard(config_dir)
    args = [sys.executable, "-c", ZENML_CLI, "login", "--local", "--blocking"]
    args += ["--port", str(port), "--ip-address", _ip(host)]
    log = config_dir.parent / LOG_FILE
    url = f"http://{host}:{port}"
    proc = spawn("zenml server", args, url, log, zenml_env(config_dir), cwd=config_dir.parent)
    wait_healthy(proc, "/health", timeout_s)
    return proc


def _ip(host: str) -> str:
    """ZenML wants an IP address: the loopback name as one."""
    return LOCALHOST if host == "localhost" else host
