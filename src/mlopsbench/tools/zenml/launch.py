"""Starting the ZenML worker from the harness: the run folder's layout, the worker's
environment (an isolated ZenML configuration and store), and the child process itself.

ZenML keeps its global configuration, its SQLite store and the default stack's artifact store
under ``$ZENML_CONFIG_PATH`` (``~/.config/zenml`` otherwise): each run gets its own, inside
its run folder, so runs never share or touch the user's ZenML state.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.support import workers

WORKER_MODULE = "mlopsbench.tools.zenml.worker"
CONFIG_DIR = "zenml"  # $ZENML_CONFIG_PATH inside the run folder
STORE_DB = Path("local_stores") / "default_zen_store" / "zenml.db"
DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Layout:
    """Where one run keeps its ZenML configuration and store, step files and worker output."""

    run_dir: Path

    @property
    def config_dir(self) -> Path:
        return self.run_dir / CONFIG_DIR

    @property
    def store_db(self) -> Path:
        return self.config_dir / STORE_DB

    @property
    def tmp_dir(self) -> Path:
        """The worker's TMPDIR: ZenML unpacks the artifacts a step loads into temporary
        folders it keeps until the process ends; they are removed with this one."""
        return self.run_dir / "tmp"

    @property
    def log(self) -> Path:
        return self.run_dir / "zenml.log"

    def file(self, command: str, kind: str) -> Path:
        return self.run_dir / f"zenml_{command}_{kind}.json"


def zenml_env(config_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that imports ZenML for ``config_dir``'s store."""
    env = dict(os.environ)
    env.update(
        {
            "ZENML_CONFIG_PATH": str(config_dir),
            # An explicit repository path stops ZenML from adopting a `.zen` folder (and its
            # active stack) found in a parent of the working folder.
            "ZENML_REPOSITORY_PATH": str(config_dir.parent),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_LOGGING_COLORS_DISABLED": "true",
            "ZENML_ENABLE_RICH_TRACEBACK": "false",
            "AUTO_OPEN_DASHBOARD": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    env.update(extra or {})
    return env


def run_worker(
    command: str,
    request: Mapping[str, Any],
    layout: Layout,
    env: Mapping[str, str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """``python -m mlopsbench.tools.zenml.worker COMMAND`` in the run folder; its JSON result
    (see :func:`mlopsbench.support.workers.run_worker`). The worker's TMPDIR
    (``layout.tmp_dir``) is removed when it has exited."""
    layout.tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        return workers.run_worker(
            WORKER_MODULE,
            command,
            request,
            what="ZenML worker",
            folder=layout.run_dir / "zenml-worker",
            env={**env, "TMPDIR": str(layout.tmp_dir)},
            log_path=layout.log,
            timeout_s=timeout_s,
            cwd=layout.run_dir,
        )
    finally:
        shutil.rmtree(layout.tmp_dir, ignore_errors=True)
