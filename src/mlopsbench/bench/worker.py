"""One tool run in its own process: ``python -m mlopsbench.bench.worker <request.json>``.

The parent (``mlopsbench compare``) writes a request, starts this module in a fresh interpreter
and measures it from outside (wall time, peak RSS). Inside, the worker times what only it can
see: interpreter start-up, importing the tool's runner, the run, and the evidence read-back.
It writes the RunResult plus ``evidence`` and ``worker`` timings to ``result_path`` atomically,
also when the run fails, and exits 0 (ok), 3 (gate failed) or 1 (failed).

Request keys: tool, usecase, config (flat dict), out_dir, result_path, status_path,
tracking_uri, options, spawned_at (the parent's ``time.time()`` just before spawning).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_T_MAIN = time.time()  # as early as possible: start-up = this minus the parent's spawn time


def _phase(status_path: str | None, phase: str) -> None:
    """Tell the parent's progress display which phase we are in (best effort)."""
    if not status_path:
        return
    try:
        tmp = Path(status_path).with_suffix(".tmp")
        tmp.write_text(json.dumps({"phase": phase, "at": time.time()}))
        tmp.replace(status_path)
    except OSError:
        pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    from mlopsbench.errors import MlopsbenchError

    return text if isinstance(exc, MlopsbenchError) else f"{type(exc).__name__}: {text}"[:500]


def _evidence(tool: str, result: Any) -> tuple[dict[str, bool] | None, str | None]:
    """Call the runner module's ``evidence(result)``; None when the module has none."""
    from mlopsbench.result import EVIDENCE_KEYS
    from mlopsbench.toolkit.registry import get_tool

    module = get_tool(tool).import_runner_module(result.usecase)
    reader = getattr(module, "evidence", None)
    if not callable(reader):
        return None, f"{module.__name__} has no evidence(result)"
    try:
        found = reader(result)
    except Exception as exc:  # a broken reader must not lose the run's result
        traceback.print_exc()
        return {k: False for k in EVIDENCE_KEYS}, f"evidence() raised {_one_line(exc)}"
    return {k: bool(found.get(k, False)) for k in EVIDENCE_KEYS}, None


DEPRECATION_CATEGORIES = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")
MAX_DEPRECATIONS = 50


@contextmanager
def _deprecations(tool: str) -> Iterator[list[dict[str, str]]]:
    """Deprecation and future warnings the tool's own packages raised in this process during
    the run (the documentation criterion's evidence: API a user's code will have to change).

    Only this process is seen: steps a tool runs in processes of its own are not.
    """
    import warnings

    from mlopsbench.toolkit.registry import get_tool

    packages = get_tool(tool).api_packages
    seen: list[dict[str, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # once per location, as Python shows them
        try:
            yield seen
        finally:
            seen.extend(_tool_deprecations(caught, packages))


def _tool_deprecations(caught: list[Any], packages: tuple[str, ...]) -> list[dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for item in caught:
        kinds = {cls.__name__ for cls in type(item.message).__mro__} if item.message else set()
        if not kinds & set(DEPRECATION_CATEGORIES):
            continue
        origin = _package_of(str(item.filename), packages)
        if origin is None:
            continue
        text = " ".join(str(item.message).split())[:200]
        found.setdefault(
            (type(item.message).__name__, text),
            {"category": type(item.message).__name__, "message": text, "package": origin},
        )
    return list(found.values())[:MAX_DEPRECATIONS]


def _package_of(filename: str, packages: tuple[str, ...]) -> str | None:
    """The tool package a warning's source file belongs to (``.../site-packages/mlflow/...``;
    mlopsbench's own ``tools/mlflow/`` folder is not MLflow)."""
    parts = Path(filename).parts
    installed = {parts[i + 1] for i, part in enumerate(parts[:-1]) if part == "site-packages"}
    for package in packages:
        if package.split(".")[0] in installed:
            return package
    return None


def _failed_result(request: dict[str, Any], error: str) -> dict[str, Any]:
    from mlopsbench.toolkit.record import unstarted_failure

    return unstarted_failure(
        request.get("tool", "?"), request.get("usecase", "?"), request.get("config", {}), error
    ).to_dict()


def run_request(request: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run one request in this process; return (result payload, exit code)."""
    from mlopsbench.bench.configs import build_config
    from mlopsbench.result import RunRequest
    from mlopsbench.toolkit.registry import load_runner

    timings = {"startup_s": max(0.0, _T_MAIN - float(request.get("spawned_at", _T_MAIN)))}
    status_path = request.get("status_path")
    payload: dict[str, Any]
    try:
        config = build_config(request["usecase"], request["config"])
        _phase(status_path, "import")
        t0 = time.perf_counter()
        runner = load_runner(request["tool"], request["usecase"])
        timings["import_s"] = time.perf_counter() - t0
        _phase(status_path, "run")
        t0 = time.perf_counter()
        with _deprecations(request["tool"]) as seen:
            result = runner(
                RunRequest(
                    usecase=request["usecase"],
                    config=config,
                    out_dir=Path(request["out_dir"]),
                    tracking_uri=request.get("tracking_uri"),
                    show_progress=False,
                    options=dict(request.get("options") or {}),
                )
            )
        timings["run_s"] = time.perf_counter() - t0
        payload = result.to_dict()
        payload["deprecations"] = seen
        _phase(status_path, "evidence")
        t0 = time.perf_counter()
        payload["evidence"], payload["evidence_error"] = _evidence(request["tool"], result)
        timings["evidence_s"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        traceback.print_exc()
        payload = _failed_result(request, _one_line(exc))
        payload["evidence"], payload["evidence_error"] = None, "run failed"
    payload["worker"] = timings
    payload["worker"]["finished_at"] = time.time()  # the parent derives process teardown from it
    code = {"ok": 0, "gate_failed": 3}.get(payload.get("status", "failed"), 1)
    return payload, code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlopsbench.bench.worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text("utf-8"))
    payload, code = run_request(request)
    from mlopsbench.result import write_json_atomic

    write_json_atomic(request["result_path"], payload)
    _phase(request.get("status_path"), "done")
    return code


if __name__ == "__main__":
    sys.exit(main())
