"""SweepFlow end to end: a ``foreach`` over the trials, read back through the Client API.

One sweep (4 trials, ``--max-workers 2``) runs once for the module, with a transient fault: the
first trial to start fails once (the root conftest's ``fail_stage``, ``once=True``) and
Metaflow's ``@retry`` runs it again. A second, one-trial sweep fails for good.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.metaflow import launch, readback, sweep
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

pytestmark = pytest.mark.slow

# 400 training images and a 10 % test split keep every trial and the t-SNE short.
DATA = DigitsDataConfig(test_fraction=0.1, limit_train=400)
CFG = SweepConfig(trials=4, models="simple,deep", epochs=1, workers=2, threshold=0.5, data=DATA)
RUN_TRIAL = "mlopsbench.usecases.sweep.stages:run_trial"
_RUNS: dict[str, RunResult] = {}


@pytest.fixture
def sweep_run(
    make_request: Callable[..., RunRequest], fail_stage: Callable[..., None]
) -> RunResult:
    """The module's sweep, run on first use (``fail_stage`` is per test: the run is cached)."""
    if "ok" not in _RUNS:
        fail_stage(RUN_TRIAL, once=True)
        _RUNS["ok"] = sweep.run(make_request("sweep-ok", CFG, usecase="sweep"))
    return _RUNS["ok"]


def _open_run(result: RunResult) -> Any:
    return readback.open_run(result.tool_info["pathspec"], Path(result.tool_info["run_dir"]))


@pytest.mark.capability("metaflow", "fan_out_in", "dynamic_task_count")
def test_sweep_record_and_every_trial_in_the_store(sweep_run: RunResult) -> None:
    assert sweep_run.status == "ok", sweep_run.error
    summary = sweep_run.tool_info["sweep"]
    assert summary["planned"] == summary["finished"] == summary["stored_trials"] == 4
    assert summary["queryable"] and summary["workers"] == 2
    assert {"trials", "data", "evaluate", "metaflow_run", "readback"} <= set(sweep_run.timings)
    assert Path(sweep_run.artifacts["card"]).is_file()
    with readback.client_scope(Path(sweep_run.tool_info["run_dir"])):
        run = _open_run(sweep_run)
        # The fan-out: one task per planned trial; the width came from the trials Parameter.
        tasks = list(run["train_trial"])
        assert run["start"].task["trials"].data == 4
        assert len(tasks) == len(run["load_data"].task["trial_plan"].data) == 4
        stored = {t["trial_result"].data["trial"]["name"]: t["trial_result"].data for t in tasks}
        assert sorted(stored) == [p["name"] for p in stages.plan_trials(CFG)]
        assert sorted(t.index for t in tasks) == [0, 1, 2, 3]
        # The fan-in: one join task saw every trial and picked the best.
        join = run["select_best"].task
        assert len(join["results"].data) == 4
        best = join["best"].data
        assert best == stages.select_best(list(stored.values()))
        assert set(join["best_model_files"].data) >= {"model.json", "model.safetensors"}
    assert sweep_run.tool_info["sweep"]["best"]["name"] == best["trial"]["name"]
    assert sweep.evidence(sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)


def test_best_trial_is_the_cores_own_sequential_best(sweep_run: RunResult, tmp_path: Path) -> None:
    """The same trials run one after the other in this process, by the core alone."""
    data = stages.prepare_data(CFG, tmp_path)
    results = [
        stages.run_trial(CFG, data["data_path"], t, tmp_path) for t in stages.plan_trials(CFG)
    ]
    expected = {r["trial"]["name"]: r["metrics"] for r in results}
    got = {row["name"]: row for row in sweep_run.tool_info["sweep"]["trials"]}
    for name, metrics in expected.items():
        assert got[name]["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9), name
        assert got[name]["loss"] == pytest.approx(metrics["loss"], rel=1e-5), name
    assert (
        sweep_run.tool_info["sweep"]["best"]["name"] == stages.select_best(results)["trial"]["name"]
    )


def test_two_workers_run_two_trials_at_once(sweep_run: RunResult) -> None:
    """``--max-workers 2``: Metaflow's timestamps show two trial tasks at a time, never more."""
    with readback.client_scope(Path(sweep_run.tool_info["run_dir"])):
        windows = [(t.created_at, t.finished_at) for t in _open_run(sweep_run)["train_trial"]]
    running = [sum(1 for s, f in windows if s <= start < f) for start, _ in windows]
    assert max(running) == 2, windows  # a task started while another one ran, never two
    assert sweep_run.tool_info["trials_at_once"] == 2


@pytest.mark.capability("metaflow", "retries_backoff")
def test_a_trial_that_failed_once_was_retried(sweep_run: RunResult) -> None:
    """The injected transient fault: Metaflow kept the failed attempt and the retry's result."""
    retried = [row for row in sweep_run.tool_info["trial_tasks"] if row["attempt"] > 0]
    assert retried and all(row["successful"] for row in retried)
    from metaflow import Task

    run_dir = Path(sweep_run.tool_info["run_dir"])
    store = {"_namespace_check": False, "_current_metadata": f"local@{run_dir}"}
    with readback.client_scope(run_dir):
        first = Task(retried[0]["pathspec"], attempt=0, **store)
        assert not first.successful
        assert "injected failure in run_trial" in first.exception.exception
        retry = Task(retried[0]["pathspec"], **store)
        assert retry.current_attempt == 1 and retry.successful and "trial_result" in retry


@pytest.mark.capability("metaflow", "conditional_branch")
def test_the_gate_switch_promoted_and_skipped_hold(sweep_run: RunResult) -> None:
    """``self.next({...}, condition="gate_verdict")``: the passed gate ran promote only."""
    from metaflow import Flow

    assert sweep_run.gate["passed"] and sweep_run.tool_info["branch"] == "promote"
    run_dir = Path(sweep_run.tool_info["run_dir"])
    with readback.client_scope(run_dir):
        run = _open_run(sweep_run)
        assert run["evaluate"].task["gate_verdict"].data == "passed"
        assert "promote" in run and "hold" not in run  # Metaflow never started hold
        assert run["end"].task["promoted"].data is True
        assert "champion" in run.user_tags
        flow = Flow("SweepFlow", _current_metadata=f"local@{run_dir}")
        assert [r.pathspec for r in flow.runs("champion")] == [run.pathspec]


def test_a_failed_trial_is_a_one_line_failed_record(
    make_request: Callable[..., RunRequest], fail_stage: Callable[..., None]
) -> None:
    fail_stage(RUN_TRIAL)
    cfg = SweepConfig(trials=1, models="simple", epochs=1, data=DATA)
    failed = sweep.run(make_request("sweep-failed", cfg, usecase="sweep"))
    assert failed.status == "failed" and failed.metrics == {}
    assert failed.error is not None and "\n" not in failed.error
    assert failed.error.endswith(
        "failed in step train_trial: RuntimeError: injected failure in run_trial"
    )
    assert "resume --origin-run-id" in failed.tool_info["resume_command"]
    (task,) = failed.tool_info["trial_tasks"]
    assert task["attempt"] == 1 and not task["successful"]  # @retry tried it twice
    with readback.client_scope(Path(failed.tool_info["run_dir"])):
        run = _open_run(failed)
        assert not run.successful and "select_best" not in run
    assert sweep.evidence(failed)["run_state"] is False


@pytest.mark.capability("metaflow", "typed_parameters")
def test_flow_cli_rejects_a_mistyped_parameter(tmp_path: Path) -> None:
    """Metaflow checks a Parameter's type before any step runs; the core checks its range."""
    flow = launch.flow_file("sweep")
    for args, message in (
        (["--trials", "many"], "Invalid value for '--trials': many is not a valid integer"),
        (["--threshold", "high"], "Invalid value for '--threshold': high is not a valid float"),
    ):
        done = subprocess.run(
            [sys.executable, str(flow), "--quiet", "--no-pylint", "run", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0
        assert message in " ".join((done.stdout + done.stderr).split()), done.stderr[-2000:]
    assert not (tmp_path / ".metaflow" / "SweepFlow").exists()  # no run was started
