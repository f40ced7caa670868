"""Metaflow's sweep: ``pipeline/sweep_flow.py``, a ``foreach`` over the planned trials.

``run(request)`` launches SweepFlow with the Runner API, passing ``workers`` as Metaflow's own
``--max-workers`` (how many tasks its local runtime runs at once) and ``trials`` as
``--max-num-splits``; then reads the trials back through the Client API: every task of the
``train_trial`` step, with the trial record it stored (``trial_result``), its timestamps and
its attempt. ``stored_trials`` is how many of those tasks hold a trial record. The evaluation
card is exported as for a run; a failed trial (after its retry) fails the run, and the record
is one line naming the step.

``evidence(result)`` re-opens the run and judges what Metaflow stored: the parameters, the
best trial's history and model files (the fan-in step's artifacts), the evaluation and its
card, the dataset's lineage and the run's state.

Timings: the core's own seconds (``data``, ``trials`` summed over the trials, ``evaluate``),
``metaflow_run`` (the whole Runner call), ``readback`` and ``card_export``; ``tool_info``
holds each trial task's window, the most trial tasks that ran at once, and Metaflow's
overhead per trial task (task window minus the trial's core seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.metaflow.adapter import DATASTORE_DIR, failure_message, preflight
from mlopsbench.tools.metaflow.launch import (
    Launched,
    export_card,
    flow_env,
    flow_file,
    launch,
    resolve_user,
)
from mlopsbench.tools.metaflow.readback import (
    ForeachTask,
    RunBack,
    client_scope,
    foreach_tasks,
    most_at_once,
    open_run,
    read_run,
    recorded_sweep_evidence,
)
from mlopsbench.usecases.registry import get_usecase

TRIAL_STEP = "train_trial"  # the foreach step of SweepFlow
TRIAL_ARTIFACT = "trial_result"  # what each of its tasks stores: the core's run_trial result
BRANCHES = ("promote", "hold")  # the steps the gate switches between


def run(request: RunRequest) -> RunResult:
    """Run the sweep flow once and return the sweep's record."""
    recorder = RunRecorder("metaflow", request, distributions=get_tool("metaflow").distributions)
    cfg = request.config
    flow = flow_file("sweep")
    preflight(request, recorder.usecase)
    user = resolve_user(request.options)
    run_dir = Path(request.out_dir).resolve()
    (run_dir / DATASTORE_DIR).mkdir(parents=True, exist_ok=True)
    env = flow_env(run_dir, user, request.options)
    options = {"max_workers": cfg.workers, "max_num_splits": cfg.trials}
    with client_scope(run_dir):
        launched = launch(flow, request, run_dir, env, None, run_options=options)
        with recorder.stage("readback"):
            back = read_run(launched.run)
            trials = foreach_tasks(launched.run, TRIAL_STEP, TRIAL_ARTIFACT)
        card = None
        if back.card_task is not None:
            with recorder.stage("card_export"):
                card = export_card(flow, back.card_task.pathspec, run_dir, env)
    return _record(recorder, flow, run_dir, user, back, trials, launched, card)


def evidence(result: RunResult) -> dict[str, bool]:
    """What Metaflow really recorded for this sweep, read from its datastore via the Client."""
    pathspec, run_dir = result.tool_info.get("pathspec"), result.tool_info.get("run_dir")
    if not pathspec or not run_dir or not (Path(run_dir) / DATASTORE_DIR).is_dir():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    with client_scope(Path(run_dir)):
        return recorded_sweep_evidence(open_run(pathspec, Path(run_dir)), get_usecase("sweep"))


def _record(
    recorder: RunRecorder,
    flow: Path,
    run_dir: Path,
    user: str,
    back: RunBack,
    trials: list[ForeachTask],
    launched: Launched,
    card: str | None,
) -> RunResult:
    found = {"datastore": str(run_dir / DATASTORE_DIR), **({"card": card} if card else {})}
    info = _tool_info(back, trials, run_dir, user, card)
    timings = {"metaflow_run": launched.seconds}
    stored = [t.output for t in trials if t.output is not None]
    evaluation = back.outputs.get("evaluate_model")
    if not back.successful or not evaluation:
        info["resume_command"] = (  # finished trials are cloned, the failed ones re-run
            f"cd {run_dir} && METAFLOW_USER={user} {sys.executable} {flow} "
            f"resume --origin-run-id {back.run_id} --max-workers {recorder.cfg.workers}"
        )
        return recorder.failed(
            failure_message(back, launched.error), tool_info=info, artifacts=found, timings=timings
        )
    return sweep_record(
        recorder,
        trials=stored,
        evaluation=evaluation,
        data=back.outputs.get("prepare_data"),
        stored_trials=len(stored),
        artifacts=found,
        tool_info=info,
        timings=timings,
    )


def _tool_info(
    back: RunBack, trials: list[ForeachTask], run_dir: Path, user: str, card: str | None
) -> dict[str, Any]:
    dataset = back.outputs.get("prepare_data", {})
    return {
        "flow": back.pathspec.split("/", 1)[0],
        "run_id": back.run_id,
        "pathspec": back.pathspec,
        "run_dir": str(run_dir),
        "datastore": str(run_dir / DATASTORE_DIR),
        "card": card,
        "user": user,
        "steps": list(back.steps),
        "branch": next((name for name in BRANCHES if name in back.steps), None),
        "trial_tasks": [_task_row(task) for task in trials],
        "trials_at_once": most_at_once(trials),
        "overhead": {"per_trial_task_s": _overhead_per_trial(trials)},
        "dataset": {k: v for k, v in dataset.items() if k not in ("data_path", "seconds")},
        "git": back.git,
        "mlflow": back.mlflow,
    }


def _task_row(task: ForeachTask) -> dict[str, Any]:
    return {
        "pathspec": task.pathspec,
        "trial": (task.output or {}).get("trial", {}).get("name"),
        "started": task.started,
        "finished": task.finished,
        "attempt": task.attempt,
        "successful": task.successful,
    }


def _overhead_per_trial(trials: list[ForeachTask]) -> float | None:
    """Mean task window minus the trial's own seconds: process start, imports, artifacts."""
    spans = [
        t.seconds - float(t.output.get("seconds") or 0.0)
        for t in trials
        if t.seconds is not None and t.output is not None
    ]
    return round(sum(spans) / len(spans), 3) if spans else None
