"""A tool's work in a child process: one JSON request in, one JSON result out, one-line errors.

Some tools read their configuration when first imported (Airflow), start a temporary server per
process (Prefect) or keep global state (ZenML): their adapters run the tool in a child process
with its environment set up first. Both sides are here once:

* the child (``python -m <tool>.worker COMMAND --request R.json --result OUT.json``) calls
  :func:`serve` with its commands; a user error (``MlopsbenchError``) is written into the result
  with its class name and exit code 2, anything else with exit code 1 — never a traceback that
  the parent would have to parse;
* the parent calls :func:`run_worker`, which starts the child in its own process group (so a
  server it started goes with it, also on Ctrl-C), waits at most ``timeout_s``, and raises a
  reported user error again as itself, in one line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError, ServerError
from mlopsbench.result import write_json_atomic
from mlopsbench.support.logs import log_reason
from mlopsbench.support.processes import stop_group

Command = Callable[[dict[str, Any]], dict[str, Any]]
ERRORS: dict[str, type[MlopsbenchError]] = {
    cls.__name__: cls for cls in (ConfigError, DataError, ServerError)
}


def serve(commands: Mapping[str, Command], argv: list[str] | None = None, prog: str = "") -> int:
    """The child's ``main``: run one command on its JSON request, write the JSON result."""
    parser = argparse.ArgumentParser(prog=prog or None)
    parser.add_argument("command", choices=sorted(commands))
    parser.add_argument("--request", type=Path, help="JSON file: what to do")
    parser.add_argument("--result", type=Path, required=True, help="where the JSON result goes")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"command": args.command, "started_at": time.time()}
    try:
        request = json.loads(args.request.read_text()) if args.request else {}
        result.update(commands[args.command](request))
        code = 0
    except MlopsbenchError as exc:
        result.update({"error": str(exc), "error_type": type(exc).__name__})
        code = 2
    except Exception as exc:  # unexpected: keep the type, the parent shows one line
        result.update({"error": f"{type(exc).__name__}: {exc}", "error_type": "Unexpected"})
        code = 1
    result["finished_at"] = time.time()  # the parent times the interpreter's exit from here
    write_json_atomic(args.result, result)
    return code


def exit_now(code: int, *, exit_handlers: bool = False) -> None:
    """Leave a worker without interpreter finalisation.

    After a run with a tool, torch, sklearn and matplotlib loaded, tearing the interpreter down
    took 10-12 s of native code on a busy 2-core machine; by now the result file is written
    atomically, so only buffered output needs flushing. ``exit_handlers``: run the ``atexit``
    handlers first, where a tool stops something it started there (Prefect's temporary API).
    """
    import atexit
    import logging
    import os

    if exit_handlers:
        atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_worker(
    module: str,
    command: str,
    request: Mapping[str, Any] | None,
    *,
    what: str,
    folder: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """``python -m MODULE COMMAND --request … --result …`` in its own process group; its result.

    ``what`` names the worker in messages ("Airflow worker"); request and result files go to
    ``folder`` (``<command>-request.json`` / ``<command>-result.json``). ``spawned_at`` and
    ``exited_at`` (epoch seconds) are added, so the caller can tell the interpreter's start-up
    and exit from the worker's own ``started_at`` / ``finished_at``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / f"{command}-result.json"
    result_path.unlink(missing_ok=True)
    args = [sys.executable, "-m", module, command, "--result", str(result_path)]
    if request is not None:
        request_path = write_json_atomic(folder / f"{command}-request.json", dict(request))
        args += ["--request", str(request_path)]
    spawned_at = time.time()
    code = _wait(args, env, log_path, timeout_s, cwd, f"{what} `{command}`")
    return {**_result(result_path, log_path, code, what), "spawned_at": spawned_at,
            "exited_at": time.time()}  # fmt: skip


def _wait(
    args: list[str], env: Mapping[str, str], log_path: Path, timeout_s: float, cwd: Path | None,
    what: str,
) -> int | None:  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise MlopsbenchError(
            f"{what} did not finish within {timeout_s:.0f} s (log: {log_path})"
        ) from None
    finally:  # also on Ctrl-C: the worker and whatever it started go with its group
        stop_group(process.pid, leader=process, timeout_s=10.0)


def _result(result_path: Path, log_path: Path, code: int | None, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(result_path.read_text())
    except (OSError, ValueError):
        reason = log_reason(log_path) or "no output"
        raise MlopsbenchError(
            f"{what} exited with code {code} without a result ({reason}; log: {log_path})"
        ) from None
    if "error" in payload:
        error_class = ERRORS.get(str(payload.get("error_type")), MlopsbenchError)
        raise error_class(str(payload["error"]).splitlines()[0])
    return dict(payload)
