"""The sweep scenario on ZenML: a dynamic pipeline maps ``run_trial`` over the planned trials,
``select_best`` joins them; everything is read back through ZenML's Client.

The second story runs the same pipeline through ZenML's own CLI (``zenml pipeline run``) in
the first run's store: a run that fails in ``evaluate_best`` (retried, then failed), then the
same run again, which takes the finished steps from ZenML's cache, survives one transient
failure by ZenML's retry, and skips the promotion because the gate failed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import SWEEP
from mlopsbench.result import EVIDENCE_KEYS, RunResult
from mlopsbench.tools.zenml import launch
from mlopsbench.usecases.sweep import stages

pytestmark = pytest.mark.slow

TRIAL_STEPS = [f"map:run_trial:{i}" for i in range(SWEEP.trials)]
EVALUATE = "mlopsbench.usecases.sweep.stages:evaluate_best"
PIPELINE_SOURCE = "mlopsbench.tools.zenml.pipeline.sweep_pipeline.sweep_pipeline"
# Two cheap trials and a gate no model passes: the promotion branch is not taken.
CLI_CONFIG = "parameters: {trials: 2, models: simple, epochs: 1, threshold: 1.0}\n"
CLI_CONFIG += "model: {name: sweep-cli}\n"


def test_sweep_record_holds_every_trial(sweep_run: RunResult) -> None:
    assert sweep_run.status == "ok", sweep_run.error
    assert sweep_run.usecase == "sweep" and sweep_run.params == SWEEP.to_dict()
    summary = sweep_run.tool_info["sweep"]
    assert summary["planned"] == summary["finished"] == summary["stored_trials"] == 4
    assert summary["queryable"] and summary["workers"] == 1
    assert sweep_run.tool_info["deterministic_trials"]
    assert sweep_run.metrics["accuracy"] == summary["best"]["accuracy"] >= 0.5
    assert [h["epoch"] for h in sweep_run.history] == [1]
    for key in ("trials", "data", "evaluate", "import", "store_init", "pipeline", "readback"):
        assert sweep_run.timings[key] > 0, key


def test_best_trial_equals_the_cores_sequential_run(sweep_run: RunResult, tmp_path: Path) -> None:
    """The same trials through the core in this process, one after the other."""
    data = stages.prepare_data(SWEEP, tmp_path)
    results = [
        stages.run_trial(SWEEP, data["data_path"], t, tmp_path) for t in stages.plan_trials(SWEEP)
    ]
    best = stages.select_best(results)
    summary = sweep_run.tool_info["sweep"]
    assert summary["best"]["name"] == best["trial"]["name"]
    assert sweep_run.metrics["accuracy"] == best["metrics"]["accuracy"]
    by_name = {row["name"]: row["accuracy"] for row in summary["trials"]}
    assert by_name == {r["trial"]["name"]: r["metrics"]["accuracy"] for r in results}


@pytest.mark.capability("zenml", "fan_out_in", "dynamic_task_count", "resource_hint")
def test_trials_fan_out_from_the_plan_and_join_in_select_best(sweep_run: RunResult) -> None:
    """ZenML compiled no trial step before the run (a dynamic snapshot with no steps): the
    mapped step runs came from the plan's output at run time; one step consumed them all.
    The trials have no edge between them (the local orchestrator's pool of 1 runs them in
    turn). Each trial's resource request is in its stored step configuration."""
    info = sweep_run.tool_info
    assert info["snapshot"] == {"dynamic": True, "steps": []}
    attempts = info["attempts"]
    assert [name for name in attempts if name.startswith("map:run_trial")] == TRIAL_STEPS
    assert all(attempts[name] == ["completed"] for name in TRIAL_STEPS)
    assert info["fan_in"] == {"step": "select_best", "inputs_from": TRIAL_STEPS}
    for name in TRIAL_STEPS:
        assert info["step_config"][name]["resources"] == {"cpu_count": 1, "memory": "1GB"}


def test_promotion_branch_taken_when_the_gate_passed(sweep_run: RunResult) -> None:
    assert sweep_run.tool_info["attempts"]["promote_best"] == ["completed"]
    version = sweep_run.tool_info["model_version"]
    assert version["model"] == "sweep-4x-w1" and version["stage"] == "production"


def test_sweep_evidence_is_read_back_from_zenml(sweep_run: RunResult) -> None:
    from mlopsbench.tools.zenml import sweep

    assert sweep.evidence(sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)


def _zenml_cli_run(store: launch.Layout, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``zenml pipeline run <source> -c run.yaml`` on the store's default local stack."""
    (cwd / "run.yaml").write_text(CLI_CONFIG)
    env = launch.zenml_env(store.config_dir, {"OMP_NUM_THREADS": "1"})
    env["ZENML_DYNAMIC_PIPELINE_WORKER_COUNT"] = "1"
    zenml = Path(sys.executable).with_name("zenml")
    argv = [str(zenml), "pipeline", "run", PIPELINE_SOURCE, "-c", "run.yaml"]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _read_back(store: launch.Layout, newest: int) -> list[dict[str, Any]]:
    """The store's newest runs (oldest first), read back through the Client by a worker."""
    env = launch.zenml_env(store.config_dir)
    return launch.run_worker("read_sweep", {"newest": newest}, store, env)["records"]


@pytest.mark.capability(
    "zenml", "remote_trigger", "resume_cache", "retries_backoff", "conditional_branch"
)
def test_cli_runs_resume_from_cache_retry_and_skip_the_promotion(
    sweep_run: RunResult, fail_stage: Callable[..., None], tmp_path: Path
) -> None:
    store = launch.Layout(Path(sweep_run.tool_info["zenml_config"]).parent)

    fail_stage(EVALUATE)  # every attempt fails: ZenML retries once, then the run fails
    failed = _zenml_cli_run(store, tmp_path)
    assert failed.returncode != 0
    fail_stage(EVALUATE, once=True)  # a transient fault: the retry succeeds
    done = _zenml_cli_run(store, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]

    first, second = _read_back(store, newest=2)
    assert first["status"] == "failed"
    assert first["attempts"]["evaluate_best"] == ["retried", "failed"]
    assert first["attempts"]["map:run_trial:1"] == ["completed"]
    assert second["status"] == "completed"
    cached = ["load_data", "plan_trials", "map:run_trial:0", "map:run_trial:1", "select_best"]
    assert {name: second["steps"][name]["status"] for name in cached} == dict.fromkeys(
        cached, "cached"
    )
    assert second["attempts"]["evaluate_best"] == ["retried", "completed"]
    retry = second["step_config"]["evaluate_best"]["retry"]
    assert retry == {"max_retries": 1, "delay": 1, "backoff": 2}
    # The gate failed (threshold 1.0): the pipeline did not call promote_best at all; in the
    # first sweep it passed, and the same pipeline code ran the step.
    assert sweep_run.tool_info["attempts"]["promote_best"] == ["completed"]
    assert not second["outputs"]["evaluate_model"]["gate"]["passed"]
    assert "promote_best" not in second["steps"] and second["gate"] is None
    assert second["model_version"]["model"] == "sweep-cli"
    assert second["model_version"]["stage"] is None
