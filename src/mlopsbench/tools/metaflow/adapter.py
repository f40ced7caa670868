"""Metaflow's adapter: run a use case's flow with the Runner API, read it back with the Client.

``run(request)`` launches ``pipeline/<use case>_flow.py`` with ``metaflow.Runner`` in the
request's run folder (datastore ``<run dir>/.metaflow``, step files ``<run dir>/steps/<run
id>/``), reads the run back through the Client API, exports the evaluation card with
``card get`` and builds the common record. ``resume(request, origin_run_id)`` resumes a failed
run in the same folder: Metaflow clones the steps that succeeded and re-runs the rest.
``evidence(result)`` re-opens the run and reports what Metaflow itself stored. The sweep
scenario has its own module, ``sweep`` (a ``foreach`` flow, read back task by task).

``request.options`` (strings): ``metaflow_user`` (else ``$METAFLOW_USER``, else the login name
unless that is ``root``, else ``mlopsbench``, with a one-line notice on stderr) and ``threads``
(OMP/MKL threads of the step processes).

Timings: the core stages' own ``seconds``, read from the artifacts their steps stored
(``data``, ``train``/``model``, ``evaluate``; a stage cloned by ``resume`` did not run and is
left out); ``metaflow_overhead``, the launch minus that core work (``tool_info["overhead"]``
splits it by task timestamps); ``readback`` and ``card_export``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import last_line
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.metaflow.launch import (
    Launched,
    export_card,
    flow_env,
    flow_file,
    launch,
    resolve_user,
)
from mlopsbench.tools.metaflow.readback import (
    RunBack,
    client_scope,
    open_run,
    overhead_breakdown,
    read_run,
    recorded_evidence,
    step_timings,
)
from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.registry import get_usecase

DATASTORE_DIR = ".metaflow"


def run(request: RunRequest) -> RunResult:
    """Run the use case's flow once and return the common result record."""
    return _execute(request, resume_from=None)


def resume(request: RunRequest, origin_run_id: str) -> RunResult:
    """Resume a failed run of the same flow in the same run folder (succeeded steps are cloned)."""
    return _execute(request, resume_from=str(origin_run_id))


def evidence(result: RunResult) -> dict[str, bool]:
    """What Metaflow really recorded for this run, read from its datastore via the Client API."""
    pathspec, run_dir = result.tool_info.get("pathspec"), result.tool_info.get("run_dir")
    if not pathspec or not run_dir or not (Path(run_dir) / DATASTORE_DIR).is_dir():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    with client_scope(Path(run_dir)):
        return recorded_evidence(open_run(pathspec, Path(run_dir)), get_usecase(result.usecase))


def _execute(request: RunRequest, resume_from: str | None) -> RunResult:
    recorder = RunRecorder("metaflow", request, distributions=get_tool("metaflow").distributions)
    flow = flow_file(recorder.usecase.name)
    preflight(request, recorder.usecase)
    user = resolve_user(request.options)
    run_dir = Path(request.out_dir).resolve()
    # An existing .metaflow here stops Metaflow from walking up to a datastore in a parent folder.
    (run_dir / DATASTORE_DIR).mkdir(parents=True, exist_ok=True)
    env = flow_env(run_dir, user, request.options)
    with client_scope(run_dir):
        launched = launch(flow, request, run_dir, env, resume_from)
        with recorder.stage("readback"):
            back = read_run(launched.run)
        card = None
        if back.card_task is not None:
            with recorder.stage("card_export"):
                card = export_card(flow, back.card_task.pathspec, run_dir, env)
    return _record(recorder, flow, run_dir, user, back, launched, card)


def preflight(request: RunRequest, usecase: UseCase) -> None:
    """Bad local inputs and an unreachable tracking server fail here, before anything is
    written to the run folder and before any process starts (the flow logs to MLflow only in
    its last step, after training)."""
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------


def _record(
    recorder: RunRecorder,
    flow: Path,
    run_dir: Path,
    user: str,
    back: RunBack,
    launched: Launched,
    card: str | None,
) -> RunResult:
    model_info = back.outputs.get("build_model", {})
    evaluation = back.outputs.get("evaluate_model", {})
    common: dict[str, Any] = {
        "artifacts": _artifacts(back, run_dir, card),
        "tool_info": _tool_info(back, launched, run_dir, user, card, flow),
        "history": model_info.get("history", []),
        "timings": _timings(recorder.usecase, back, launched),
    }
    if not back.successful:
        return recorder.failed(failure_message(back, launched.error), **common)
    return recorder.finish(
        metrics=evaluation.get("metrics", {}),
        gate=evaluation.get("gate"),
        model=model_info.get("model_name"),
        params=back.params or None,
        **common,
    )


def _timings(usecase: UseCase, back: RunBack, launched: Launched) -> dict[str, float]:
    """Core seconds from the stage artifacts; everything else in the launch is Metaflow's.

    MLflow logging in the end step is timed only if ``log_run_to_mlflow`` reports its own
    ``seconds`` (as the core stages do); otherwise it counts as Metaflow's time.
    """
    timings = core_timings(usecase, back.fresh_outputs)
    tracking = back.mlflow.get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
    timings["metaflow_overhead"] = max(launched.seconds - sum(timings.values()), 0.0)
    return timings


def _artifacts(back: RunBack, run_dir: Path, card: str | None) -> dict[str, str]:
    """Files the run left in its step folders, the datastore and the exported card."""
    dataset = back.outputs.get("prepare_data", {})
    model_info = back.outputs.get("build_model", {})
    found = {
        "data": dataset.get("data_path"),
        "model": model_info.get("model_dir"),
        "history": model_info.get("history_path"),
        **back.outputs.get("evaluate_model", {}).get("artifacts", {}),
        "datastore": str(run_dir / DATASTORE_DIR),
        "card": card,
    }
    return {name: str(path) for name, path in found.items() if path}


def _tool_info(
    back: RunBack, launched: Launched, run_dir: Path, user: str, card: str | None, flow: Path
) -> dict[str, Any]:
    dataset = back.outputs.get("prepare_data", {})
    model_info = back.outputs.get("build_model", {})
    evaluation = back.outputs.get("evaluate_model", {})
    info: dict[str, Any] = {
        "flow": back.pathspec.split("/", 1)[0],
        "run_id": back.run_id,
        "pathspec": back.pathspec,
        "run_dir": str(run_dir),
        "datastore": str(run_dir / DATASTORE_DIR),
        "card": card,
        "user": user,
        "origin_run": back.origin,
        "cloned_steps": [name for name, step in back.steps.items() if step.cloned_from],
        "steps": step_timings(back),
        "overhead": overhead_breakdown(back, launched.started, launched.returned),
        "dataset": {k: v for k, v in dataset.items() if k not in ("data_path", "seconds")},
        "git": back.git,
        "mlflow": back.mlflow,
        **{k: model_info[k] for k in ("precision", "device") if k in model_info},  # digits
    }
    if evaluation.get("inference"):  # sentiment: precision actually used, throughput
        info["inference"] = evaluation["inference"]
    if not back.successful:  # only a failed step leaves something to resume (not a failed gate)
        info["resume_command"] = (
            f"cd {run_dir} && METAFLOW_USER={user} {sys.executable} {flow} "
            f"resume --origin-run-id {back.run_id}"
        )
    return info


def failure_message(back: RunBack, launch_error: str) -> str:
    """One line: the run, the step that failed and its exception's last line."""
    if back.failure is None:
        return f"metaflow run {back.pathspec} failed: {launch_error or 'unknown error'}"
    step, exc = back.failure
    kind = str(getattr(exc, "type", "Exception")).rsplit(".", 1)[-1]
    message = last_line(getattr(exc, "exception", "")) or "no message"
    return f"metaflow run {back.pathspec} failed in step {step}: {kind}: {message}"
