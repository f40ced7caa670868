"""Starting a flow from the harness: which flow, its parameters, its environment, the Runner.

The flow of a use case is ``pipeline/<use case>_flow.py``; the Runner finds the single
``FlowSpec`` subclass defined there, and Metaflow names the run after it. Its parameters are
the core config's flat values (``to_params``) plus the tool-only ``mlflow_uri``. Steps run with
the run folder as their working directory, so local paths are made absolute here. The evaluation card is exported with ``python <flow> card get``
(never ``card server``: it binds all interfaces).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench import tracking
from mlopsbench.errors import ConfigError, MlopsbenchError
from mlopsbench.result import RunRequest
from mlopsbench.support.logs import last_line
from mlopsbench.toolkit.options import thread_env
from mlopsbench.tools.metaflow.readback import CARD_ID, CLIENT_CACHE_DIR
from mlopsbench.usecases.common.params import to_params

PIPELINE_DIR = Path(__file__).resolve().parent / "pipeline"
CARD_FILE = "card.html"
PROJECT_USER = "mlopsbench"  # Metaflow's user when running as root (as `compare` does)


# ---------------------------------------------------------------------------------------------
# the flow of a use case
# ---------------------------------------------------------------------------------------------


def flow_file(usecase: str) -> Path:
    """``pipeline/<use case>_flow.py``: a new use case needs only its flow file there."""
    path = PIPELINE_DIR / f"{usecase}_flow.py"
    if not path.is_file():
        raise ConfigError(f"no Metaflow flow for the {usecase} use case (pipeline/{path.name})")
    return path


def flow_parameters(cfg: Any, tracking_uri: str | None) -> dict[str, Any]:
    """The flow's parameter values for a core config: its flat values, plus ``mlflow_uri``.

    Settings named ``*_path`` are local paths: made absolute, as is a relative SQLite store, so
    they mean in the run folder what they meant where the user typed them.
    """
    params = {
        name: str(Path(value).expanduser().resolve()) if name.endswith("_path") and value else value
        for name, value in to_params(cfg).items()
    }
    params["mlflow_uri"] = tracking.absolute_store_uri(tracking_uri) if tracking_uri else ""
    return params


# ---------------------------------------------------------------------------------------------
# who runs it, and with which environment
# ---------------------------------------------------------------------------------------------


def resolve_user(options: Mapping[str, str]) -> str:
    """The user name Metaflow records (its namespace); Metaflow rejects none and ``root``.

    The ``metaflow_user`` option, else ``$METAFLOW_USER``, else the login name; as ``root`` (or
    with no name at all: containers, CI) the project's name ``mlopsbench``, as ``compare`` does
    for its own runs, with a one-line notice on stderr. An explicit ``root`` is an error.
    """
    for source, user in (
        ("the metaflow_user option", options.get("metaflow_user")),
        ("METAFLOW_USER", os.environ.get("METAFLOW_USER")),
    ):
        if user and user.strip():
            if user.strip() == "root":
                raise ConfigError(
                    f"{source} is 'root', which Metaflow refuses: choose another name "
                    "(e.g. export METAFLOW_USER=$(whoami)-bench)"
                )
            return user.strip()
    candidates = [os.environ.get(name) for name in ("SUDO_USER", "USERNAME", "USER", "LOGNAME")]
    with suppress(OSError, KeyError):  # no passwd entry for this uid (some containers)
        candidates.append(getpass.getuser())
    for user in candidates:
        if user and user.strip() and user.strip() != "root":
            return user.strip()
    print(
        f"warning: Metaflow refuses the user 'root' (or none): recording this run as "
        f"METAFLOW_USER={PROJECT_USER} (set METAFLOW_USER to choose another name)",
        file=sys.stderr,
        flush=True,
    )
    return PROJECT_USER


def flow_env(run_dir: Path, user: str, options: Mapping[str, str]) -> dict[str, str]:
    """Environment for the flow's processes: isolated user, client cache, quiet tools."""
    env = {
        "METAFLOW_USER": user,
        "METAFLOW_CLIENT_CACHE_PATH": str(run_dir / CLIENT_CACHE_DIR),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # The flow decides from its mlflow_uri Parameter alone, not from the caller's env.
        "MLFLOW_TRACKING_URI": "",
    }
    return {**env, **thread_env(options)}


# ---------------------------------------------------------------------------------------------
# the Runner, and the card
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launched:
    """A run the Runner finished (successfully or not), and when (epoch and wall seconds)."""

    run: Any  # metaflow.Run
    started: float  # time.time() as the Runner was called, to compare with task timestamps
    returned: float
    seconds: float  # the whole launch, Runner set-up and clean-up included
    error: str  # the last stderr line of a failed run


def launch(
    flow: Path,
    request: RunRequest,
    run_dir: Path,
    env: Mapping[str, str],
    resume_from: str | None,
    run_options: Mapping[str, Any] | None = None,
) -> Launched:
    """Run (or resume) the flow with the Runner API; block until it ends, failed or not.

    ``run_options`` are options of ``run`` itself (``max_workers``, ``max_num_splits``), next
    to the flow's parameters.
    """
    runner_class = import_runner()
    began = time.perf_counter()
    with runner_class(
        str(flow), show_output=request.show_progress, cwd=str(run_dir), env=dict(env), pylint=False
    ) as runner:
        started = time.time()
        try:
            if resume_from is None:
                params = flow_parameters(request.config, request.tracking_uri)
                executing = runner.run(**dict(run_options or {}), **params)
            else:
                executing = runner.resume(origin_run_id=resume_from)
        except RuntimeError as exc:  # the process died before it had a run id
            raise MlopsbenchError(
                f"metaflow could not start {flow.name}: {last_line(exc)}"
            ) from None
        returned = time.time()
        failed = executing.status != "successful"
        run = executing.run
        error = last_line(executing.stderr) if failed else ""
    return Launched(run, started, returned, time.perf_counter() - began, error)


def import_runner() -> Any:
    """``metaflow.Runner``, imported without breaking a later ``import torch`` in this process.

    The Runner imports Metaflow's vendored typing_extensions, which replaces
    ``typing._collect_parameters``. When the real typing_extensions was imported first (rich,
    typer, pytest do), TypeVars it makes later are then judged against the vendored sentinel and
    ``import torch`` raises "Type parameter ... without a default follows type parameter with a
    default". Keeping the function that was active before avoids it.
    """
    import typing

    saved = getattr(typing, "_collect_parameters", None)
    try:
        import metaflow.runner.click_api  # noqa: F401 (the import that patches typing)
        from metaflow import Runner
    finally:
        if saved is not None:
            typing._collect_parameters = saved  # type: ignore[attr-defined]
    return Runner


def export_card(
    flow: Path, task_pathspec: str, run_dir: Path, env: Mapping[str, str]
) -> str | None:
    """``python <flow> card get <run>/<step>/<task> card.html``; None if it did not work."""
    _, run_id, step, task_id = task_pathspec.split("/")
    out = run_dir / CARD_FILE
    cmd = [
        sys.executable,
        str(flow),
        "--quiet",
        "card",
        "get",
        "--id",
        CARD_ID,
        f"{run_id}/{step}/{task_id}",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        cwd=run_dir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return str(out) if proc.returncode == 0 and out.is_file() else None
