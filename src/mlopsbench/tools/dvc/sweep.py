"""DVC's sweep: every trial a DVC experiment run by DVC's own queue, the best applied and gated.

``run(request)`` makes the run folder a committed git + DVC project holding
``pipeline/sweep/dvc.yaml`` (params.yaml: the SweepConfig's settings and a ``trial:`` block),
then does what a DVC user does for a hyper-parameter sweep:

1. ``dvc repro prepare_data`` and a commit: the data once, the experiments' baseline;
2. ``dvc exp run --queue --name <trial> train_trial -S trial.model=... -S trial.lr=...``, one
   per trial the core planned (``plan_trials``: the number of experiments is set at run time);
3. ``dvc queue start --jobs <workers>``: DVC's queue (dvc-task's Celery workers over a
   filesystem broker) runs ``workers`` experiments at a time. The queue's own status (what
   ``dvc queue status`` prints) is polled until every trial is done, keeping how many trials
   DVC reported running at once;
4. ``dvc exp show --json --rev <baseline>``: every experiment with its params and metrics (the
   store read-back); each trial's report (``train/run_trial.json``) is read from its experiment
   with ``DVCFileSystem``;
5. the core's ``select_best`` over them, ``dvc exp apply <best>``, ``dvc repro evaluate`` (gate,
   plots, MLflow when asked), a commit, and the model registered with GTO past the gate.

``request.options``: ``threads`` (OMP/MKL threads of the stage processes) and
``queue_timeout`` (seconds the queue may take, default 3600).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import last_line
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.dvc.adapter import register_past_gate
from mlopsbench.tools.dvc.project import (
    LOG_DIR,
    Project,
    check_git,
    commit_all,
    create_project,
    dvc_env,
    pipeline_file,
    project_values,
    run_dvc,
)
from mlopsbench.tools.dvc.readback import (
    ProjectBack,
    epochs_recorded,
    lineage_recorded,
    model_cached,
    plot_images,
    read_project,
    run_state_clean,
)
from mlopsbench.usecases.sweep import stages

USECASE = "sweep"
DATA_STAGE, TRIAL_STAGE, EVALUATE_STAGE = "prepare_data", "train_trial", "evaluate"
TRIAL_KEY = "trial"  # params.yaml's block of the trial an experiment trains
TRIAL_REPORT = "train/run_trial.json"
TRIAL_METRICS = "dvclive/metrics.json"
REPORTS = {"build_model": "run_trial.json"}  # the model stage's report: one trial's
# Settings the queueing reads (which experiments, how many at once), not any stage.
QUEUE_SETTINGS = (
    *("trials", "sampler", "sweep_seed", "models", "learning_rates", "batch_sizes"),
    "workers",
)
POLL_S = 1.0
STALL_S = 120.0  # queued trials and none running for this long: no worker is taking them
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class QueueWatch:
    """What DVC's queue reported while it ran the trials."""

    states: dict[str, str] = field(default_factory=dict)  # trial -> Queued/Running/Success/...
    max_running: int = 0
    running_together: list[str] = field(default_factory=list)  # first pair seen running
    polls: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed(self) -> list[str]:
        return sorted(name for name, state in self.states.items() if state != "Success")

    def as_dict(self) -> dict[str, Any]:
        return {
            "states": dict(self.states),
            "max_running": self.max_running,
            "running_together": self.running_together,
            "polls": self.polls,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def run(request: RunRequest) -> RunResult:
    """The sweep as DVC experiments; the common sweep record."""
    recorder = RunRecorder("dvc", request, distributions=get_tool("dvc").distributions)
    cfg = request.config
    timeout = _preflight(request, recorder)
    root = Path(request.out_dir).resolve()
    env = dvc_env(root, request.tracking_uri, request.options)
    trials = stages.plan_trials(cfg)
    with recorder.stage("dvc_setup"):
        project = create_project(root, USECASE, cfg, extra_params={TRIAL_KEY: trials[0]})
    info: dict[str, Any] = {
        "run_dir": str(root),
        "pipeline_commit": project.commit,
        "inputs": project.inputs,
    }
    data_run = run_dvc(root, ["repro", DATA_STAGE], env, "repro-data", request.show_progress)
    recorder.add("dvc_repro_data", data_run.seconds)  # the process, the core stage included
    if not data_run.ok:
        return recorder.failed(data_run.failure(), tool_info=info)
    with recorder.stage("git_commit"):
        info["baseline"] = commit_all(root, "sweep: the data, the experiments' baseline")
    # Trials do not log to MLflow: only the evaluated best does (as a normal run).
    quiet = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    with recorder.stage("dvc_queue"):
        error = _queue(root, trials, quiet)
    if error:
        return recorder.failed(error, tool_info=info)
    with recorder.stage("dvc_queue_run"):
        watch = _run_queue(root, [t["name"] for t in trials], int(cfg.workers), quiet, timeout)
    info["queue"] = {"jobs": int(cfg.workers), **watch.as_dict()}
    if watch.error or watch.failed:
        return recorder.failed(_queue_failure(root, watch, quiet), tool_info=info)
    with recorder.stage("readback"):
        rows = experiments(root, info["baseline"], quiet)
        results = [_trial_result(root, row) for row in rows]
    info["experiments"] = [{k: row[k] for k in ("name", "rev", "state")} for row in rows]
    if len(results) < len(trials):
        error = f"dvc exp show lists {len(results)} of the {len(trials)} trials the queue ran"
        return recorder.failed(error, tool_info=info)
    return _evaluate_best(recorder, project, env, results, info)


def evidence(result: RunResult) -> dict[str, bool]:
    """What DVC stored for the sweep: the best trial applied, evaluated and committed."""
    root = result.tool_info.get("run_dir")
    if not root or not (Path(root) / ".dvc").is_dir() or not (Path(root) / "dvc.lock").is_file():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    back = read_project(Path(root), REPORTS)
    best = (result.tool_info.get("sweep") or {}).get("best") or {}
    return {
        "params": sweep_params_recorded(back, result, best),
        "per_epoch_metrics": epochs_recorded(back),
        "final_metrics": _accuracy_recorded(back, result.metrics.get("accuracy")),
        "model_artifact": model_cached(back),
        "plots": sum(plot_images(back.root).values()) >= 2,
        "lineage": lineage_recorded(back),
        "run_state": run_state_clean(back) and result.status != "failed",
    }


# ---------------------------------------------------------------------------------------------
# before: inputs, git, a fresh folder
# ---------------------------------------------------------------------------------------------


def _preflight(request: RunRequest, recorder: RunRecorder) -> float:
    """Bad inputs, a missing git and an unreachable tracking server fail here, in one line,
    before anything is written; returns the queue's timeout."""
    recorder.usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)
    check_git()
    pipeline_file(USECASE)
    root = Path(request.out_dir)
    if (root / ".dvc").exists() or (root / ".git").exists():
        raise ConfigError(f"{root} already holds a git or DVC project: give a fresh run folder")
    text = request.options.get("queue_timeout", str(DEFAULT_TIMEOUT_S))
    try:
        timeout = float(text)
    except ValueError:
        timeout = 0.0
    if timeout <= 0:
        raise ConfigError(f"queue_timeout must be a positive number of seconds, got {text!r}")
    return timeout


# ---------------------------------------------------------------------------------------------
# the queue
# ---------------------------------------------------------------------------------------------


def set_params(trial: Mapping[str, Any]) -> list[str]:
    """``-S trial.<key>=<value>`` for each key of the trial (typed by YAML: lr a float,
    batch_size an int)."""
    args: list[str] = []
    for key in stages.TRIAL_KEYS:
        args += ["--set-param", f"{TRIAL_KEY}.{key}={trial[key]}"]
    return args


def _queue(root: Path, trials: Sequence[Mapping[str, Any]], env: Mapping[str, str]) -> str | None:
    """One ``dvc exp run --queue`` per trial; the first failure as one line."""
    for trial in trials:
        name = str(trial["name"])
        args = ["exp", "run", "--queue", "--name", name, *set_params(trial), TRIAL_STAGE]
        done = run_dvc(root, args, env, f"queue-{name}")
        if not done.ok:
            return f"dvc exp run --queue {name} failed: {last_line(chr(10).join(done.output))}"
    return None


def _run_queue(
    root: Path, names: Sequence[str], jobs: int, env: Mapping[str, str], timeout: float
) -> QueueWatch:
    """``dvc queue start --jobs <jobs>``, then DVC's queue status until every trial is done."""
    watch = QueueWatch()
    began = time.perf_counter()
    error = start_queue(root, jobs, env)
    if error:
        watch.error = error
        return watch
    _watch(root, set(names), watch, began + timeout)
    watch.seconds = time.perf_counter() - began
    # Workers stop themselves when idle, but with --jobs > 1 the first to stop cleans the
    # shared broker and another can miss its shutdown and stay: `dvc queue stop` ends them
    # (with --kill, the trials still running when the queue timed out or stalled).
    kill = ["--kill"] if watch.error else []
    run_dvc(root, ["queue", "stop", *kill], env, "queue-stop")
    return watch


def start_queue(root: Path, jobs: int, env: Mapping[str, str]) -> str | None:
    """``dvc queue start --jobs <jobs>``; its error as one line. Its output goes to a file: the
    workers it detaches would hold a pipe open until they exit."""
    log = root / LOG_DIR / "queue-start.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "--jobs", str(jobs)],
            cwd=root,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    if done.returncode:
        return f"dvc queue start failed: {last_line(log.read_text()) or done.returncode}"
    return None


def _watch(root: Path, names: set[str], watch: QueueWatch, deadline: float) -> None:
    """Poll ``celery_queue.status()`` (``dvc queue status``): states, trials running at once."""
    from dvc.repo import Repo

    last_change = time.perf_counter()
    with Repo(str(root)) as repo:
        while True:
            states = {e["name"]: e["status"] for e in repo.experiments.celery_queue.status()}
            states = {name: state for name, state in states.items() if name in names}
            watch.polls += 1
            if states != watch.states:
                last_change = time.perf_counter()
            watch.states = states
            running = sorted(name for name, state in states.items() if state == "Running")
            if len(running) > watch.max_running:
                watch.max_running = len(running)
                watch.running_together = running if len(running) > 1 else []
            if len(states) == len(names) and not {"Queued", "Running"} & set(states.values()):
                return
            now = time.perf_counter()
            if now > deadline:
                watch.error = f"the DVC queue did not finish the trials in time ({states})"
                return
            if not running and now - last_change > STALL_S:
                watch.error = f"no DVC queue worker took a trial in {STALL_S:.0f} s ({states})"
                return
            time.sleep(POLL_S)


def _queue_failure(root: Path, watch: QueueWatch, env: Mapping[str, str]) -> str:
    """One line: the first failed trial and its error, from ``dvc queue logs``."""
    if watch.error:
        return watch.error
    name = watch.failed[0]
    logs = run_dvc(root, ["queue", "logs", name], env, f"queue-logs-{name}")
    reason = logs.failure().split(": ", 1)[-1] if logs.output else "no log"
    return f"DVC experiment {name} failed ({watch.states[name]}): {reason}"[:500]


# ---------------------------------------------------------------------------------------------
# the store: dvc exp show
# ---------------------------------------------------------------------------------------------


def dvc_json(root: Path, args: Sequence[str], env: Mapping[str, str]) -> Any:
    """``dvc <args> --json``: its stdout as JSON (DVC's warnings go to stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args, "--json"],
        cwd=root,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        reason = last_line(done.stderr or done.stdout) or f"exit {done.returncode}"
        raise ConfigError(f"dvc {' '.join(args)} failed: {reason}")
    return json.loads(done.stdout)


def experiments(root: Path, baseline: str, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every finished experiment of the baseline in ``dvc exp show --json``: name, rev, state,
    its ``trial:`` params and its DVCLive metrics (the trial's test accuracy, loss, F1)."""
    shown = dvc_json(root, ["exp", "show", "--rev", baseline], env)
    rows = []
    for entry in shown:
        if entry.get("rev") != baseline:
            continue
        for exp in entry.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state") or "success"
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get(TRIAL_METRICS, {}).get("data")
                if rev.get("name") and params.get(TRIAL_KEY) and metrics:
                    row = {"name": rev["name"], "rev": rev["rev"], "state": state}
                    rows.append({**row, "trial": params[TRIAL_KEY], "metrics": metrics})
    return sorted(rows, key=lambda row: int(row["trial"]["index"]))


def _trial_result(root: Path, row: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's report, read from its experiment's commit through DVC's file system, with
    the experiment that holds it."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root), rev=str(row["rev"]))
    report = json.loads(fs.read_text(TRIAL_REPORT))
    return {**report, "experiment": {"name": row["name"], "rev": row["rev"]}}


# ---------------------------------------------------------------------------------------------
# after: the best trial applied, evaluated, committed, registered
# ---------------------------------------------------------------------------------------------


def _evaluate_best(
    recorder: RunRecorder,
    project: Project,
    env: dict[str, str],
    results: list[dict[str, Any]],
    info: dict[str, Any],
) -> RunResult:
    root = project.root
    best = stages.select_best(results)
    name = best["experiment"]["name"]
    with recorder.stage("dvc_exp_apply"):
        applied = run_dvc(root, ["exp", "apply", name], env, "exp-apply")
    if not applied.ok:
        return recorder.failed(applied.failure(), tool_info=info)
    evaluate = run_dvc(root, ["repro", EVALUATE_STAGE], env, "repro-evaluate")
    recorder.add("dvc_repro_evaluate", evaluate.seconds)  # the process, the core stage included
    with recorder.stage("readback"):
        back = read_project(root, REPORTS)
    info["repro_evaluate"] = {"ran": evaluate.ran, "skipped": evaluate.skipped}
    info.update(stages={core: back.stage_of[core] for core in back.stage_of}, mlflow=back.mlflow)
    if not evaluate.ok:
        return recorder.failed(evaluate.failure(), tool_info=info)
    with recorder.stage("git_commit"):
        info["commit"] = commit_all(root, f"sweep: best trial {name} applied and evaluated")
    with recorder.stage("register"):
        info["registered"] = register_past_gate(root, back)
    return sweep_record(
        recorder,
        trials=[_in_project(root, r) if r is best else r for r in results],
        evaluation=_in_project(root, back.reports["evaluate_model"]),
        data=_in_project(root, back.reports["prepare_data"]),
        stored_trials=len(results),
        artifacts=_artifacts(root),
        tool_info=info,
    )


def _in_project(root: Path, report: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's report with its relative paths made absolute (in the run folder). Only the
    best trial is checked out there: the others' paths stay relative to their experiments."""
    found = dict(report)
    for key in ("data_path", "model_dir", "history_path"):
        if isinstance(found.get(key), str) and not Path(found[key]).is_absolute():
            found[key] = str(root / found[key])
    if isinstance(found.get("artifacts"), dict):
        found["artifacts"] = {k: str(root / v) for k, v in found["artifacts"].items()}
    return found


def _artifacts(root: Path) -> dict[str, str]:
    names = {"dvc_yaml": "dvc.yaml", "dvc_lock": "dvc.lock", "params": "params.yaml"}
    return {name: str(root / path) for name, path in names.items() if (root / path).is_file()}


# ---------------------------------------------------------------------------------------------
# the evidence
# ---------------------------------------------------------------------------------------------


def sweep_params_recorded(back: ProjectBack, result: RunResult, best: Mapping[str, Any]) -> bool:
    """params.yaml, as DVC reads it, is the sweep's config with the best trial's point, and
    every value a stage ran with is the one dvc.lock recorded."""
    from mlopsbench.errors import MlopsbenchError
    from mlopsbench.usecases.registry import get_usecase

    usecase = get_usecase(USECASE)
    settings = dict(back.params)
    trial = settings.pop(TRIAL_KEY, None)
    try:
        config = usecase.config(settings)
    except MlopsbenchError:  # values the config rejects: not the run's config
        return False
    cfg = usecase.config(dict(result.params))
    expected = usecase.config(project_values(cfg, result.tool_info.get("inputs") or {}))
    point = {key: best.get(key) for key in stages.TRIAL_KEYS}
    used = {k: v for stage in back.stages.values() for k, v in stage.params.items()}
    return (
        bool(used)
        and config == expected
        and trial == point
        and all(back.params.get(k) == v for k, v in used.items())
    )


def _accuracy_recorded(back: ProjectBack, accuracy: Any) -> bool:
    """``dvc metrics show``'s eval/metrics.json holds the record's accuracy."""
    stored = back.metrics.get("eval/metrics.json", {}).get("accuracy")
    if not isinstance(stored, int | float) or not isinstance(accuracy, int | float):
        return False
    return abs(float(stored) - float(accuracy)) < 1e-9
