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

    declared = get_tool(tool)
    reader = getattr(declared.import_adapter(), "evidence", None)
    if not callable(reader):
        return None, f"{declared.package}.{declared.adapter} has no evidence(result)"
    try:
        found = reader(result)
    except Exception as exc:  # a broken reader must not lose the run's result
        traceback.print_exc()
        return {k: False for k in EVIDENCE_KEYS}, f"evidence() raised {_one_line(exc)}"
    return {k: bool(found.get(k, False)) for k in EVIDENCE_KEYS}, None


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
        runner = load_runner(request["tool"])
        timings["import_s"] = time.perf_counter() - t0
        _phase(status_path, "run")
        t0 = time.perf_counter()
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
