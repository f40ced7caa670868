"""The sweep on Dagster: a graph-backed asset mapping one step per trial over a ``DynamicOut``.

Three real executions against run folders' instances: the sweep on two workers (the
multiprocess executor) with one trial failing once (Dagster retries it); a sweep on the
in-process executor whose evaluation fails (its best trial is compared with the core's own
sequential run), then re-executed from that failure with a gate it cannot pass (only the failed
steps run again; the champion branch is skipped); and a materialisation started from Dagster's
CLI. The rest reads the code location only.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInvalidConfigError,
    ReexecutionOptions,
    build_schedule_context,
    validate_run_config,
)

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.dagster import instance, launch, readback, sweep
from mlopsbench.tools.dagster.pipeline.definitions import defs
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

pytestmark = pytest.mark.slow

# 400 training images and a 10 % test split: trials of a second or two, a short t-SNE.
DATA = DigitsDataConfig(test_fraction=0.1, limit_train=400)
SMALL = SweepConfig(trials=4, models="simple,deep", epochs=1, threshold=0.0, data=DATA)
RESUMED = SMALL.with_overrides(trials=2, threshold=1.0)  # in-process, below its gate
TRIAL_STEPS = "sweep_model.run_trial["


def _events(home: Path, run_id: str, kind: DagsterEventType) -> list[Any]:
    with instance.open_instance(home) as dagster:
        return [entry.dagster_event for entry in dagster.all_logs(run_id, of_type=kind)]


def _step_stats(home: Path, run_id: str) -> dict[str, Any]:
    with instance.open_instance(home) as dagster:
        return {stats.step_key: stats for stats in dagster.get_run_step_stats(run_id)}


def _messages(error: Any) -> str:
    """An error's message and its causes' (Dagster wraps the op's own exception)."""
    return error.message + (" | " + _messages(error.cause) if error.cause else "")


def _started_steps(home: Path, run_id: str) -> set[str]:
    return {event.step_key for event in _events(home, run_id, DagsterEventType.STEP_START)}


# ---------------------------------------------------------------------------------------------
# two workers, one trial failing once
# ---------------------------------------------------------------------------------------------


@pytest.mark.capability("dagster", "fan_out_in", "dynamic_task_count", "retries_backoff")
def test_sweep_on_two_workers_retries_a_failed_trial(
    make_request: Callable[..., RunRequest], fail_stage: Callable[..., None]
) -> None:
    fail_stage("mlopsbench.usecases.sweep.stages:run_trial", once=True)
    cfg = SMALL.with_overrides(workers=2)
    result = sweep.run(make_request("sweep-w2", cfg, "sweep"))
    assert result.status == "ok", result.error
    home, run_id = Path(result.tool_info["dagster_home"]), result.tool_info["run_id"]
    assert result.tool_info["executor"] == "multiprocess"
    assert result.tool_info["max_concurrent"] == 2

    # the fan-out: one mapped step per planned trial (a run setting), all in the event log
    stats = _step_stats(home, run_id)
    trial_steps = {key: s for key, s in stats.items() if key.startswith(TRIAL_STEPS)}
    assert sorted(trial_steps) == [f"sweep_model.run_trial[trial_0{i}]" for i in range(4)]
    assert all(s.status.value == "SUCCESS" for s in trial_steps.values())
    outputs = _events(home, run_id, DagsterEventType.STEP_OUTPUT)
    assert {e.step_key for e in outputs} >= set(trial_steps) | {"sweep_model.select_best"}
    summary = result.tool_info["sweep"]
    assert summary["finished"] == summary["stored_trials"] == 4 and summary["queryable"]

    # the retry: Dagster itself recorded the failed attempt and the second one
    retried = [key for key, s in trial_steps.items() if (s.attempts or 1) > 1]
    assert retried, {key: s.attempts for key, s in trial_steps.items()}
    up_for_retry = _events(home, run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert {e.step_key for e in up_for_retry} == set(retried)
    # the first retry's exponential back-off: (2 ** 1 - 1) * delay, delay 1 s
    assert [e.event_specific_data.seconds_to_wait for e in up_for_retry] == [1.0] * len(retried)
    assert "injected failure in run_trial" in _messages(up_for_retry[0].event_specific_data.error)
    assert not _events(home, run_id, DagsterEventType.STEP_FAILURE)

    # the executor ran two trials at once
    spans = [(s.start_time, s.end_time) for s in trial_steps.values()]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(spans, 2)), spans

    assert sweep.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, True)


# ---------------------------------------------------------------------------------------------
# in-process: a failed evaluation, re-executed from the failure with a gate it cannot pass
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resumed(dg_root: Path) -> Iterator[tuple[RunResult, str]]:
    """The failed sweep's record and the id of its re-execution from failure."""

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("injected failure in evaluate_best")

    request = RunRequest(usecase="sweep", config=RESUMED, out_dir=dg_root / "sweep-resume")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "evaluate_best", broken)
        failed = sweep.run(request)
    home = Path(failed.tool_info["dagster_home"])
    with instance.open_instance(home) as dagster:
        parent = dagster.get_run_by_id(failed.tool_info["run_id"])
        options = ReexecutionOptions.from_failure(parent.run_id, dagster)
        again = sweep.execute(dagster, parent.run_config, reexecution=options)
    yield failed, again.run_id


@pytest.mark.capability("dagster", "resume_cache", "dynamic_task_count")
def test_reexecution_from_failure_runs_only_what_failed(resumed: tuple[RunResult, str]) -> None:
    failed, again = resumed
    assert failed.status == "failed" and failed.tool_info["executor"] == "in_process"
    assert failed.error is not None and failed.error.endswith(
        "failed in step sweep_evaluation: RuntimeError: injected failure in evaluate_best"
    )
    home = Path(failed.tool_info["dagster_home"])
    first = _started_steps(home, failed.tool_info["run_id"])
    assert {"sweep_data", "sweep_evaluation"} <= first
    # the same job mapped two trials here (four in the sweep above): a run setting decides
    assert sorted(key for key in first if key.startswith(TRIAL_STEPS)) == [
        "sweep_model.run_trial[trial_00]",
        "sweep_model.run_trial[trial_01]",
    ]
    rerun = _started_steps(home, again)
    assert "sweep_evaluation" in rerun
    assert not rerun & {"sweep_data", "sweep_model.plan_trials", "sweep_model.select_best"}
    assert not any(key.startswith(TRIAL_STEPS) for key in rerun)
    with instance.open_instance(home) as dagster:
        run = dagster.get_run_by_id(again)
        assert run.parent_run_id == failed.tool_info["run_id"]
        assert run.status.value == "SUCCESS"


def test_the_fan_in_picks_the_trial_the_core_picks_sequentially(
    resumed: tuple[RunResult, str],
) -> None:
    failed, _ = resumed
    home = Path(failed.tool_info["dagster_home"])
    with instance.open_instance(home) as dagster:
        back = readback.read_run(dagster, failed.tool_info["run_id"])
        trials, stored = sweep.read_trials(dagster, failed.tool_info["run_id"])
    best = back.asset("sweep", "model")  # select_best's output, materialised before the failure
    cfg = RESUMED
    data = stages.prepare_data(cfg, home.parent / "core")
    core = [
        stages.run_trial(cfg, data["data_path"], trial, home.parent / "core")
        for trial in stages.plan_trials(cfg)
    ]
    assert len(trials) == stored == len(core) == 2
    expected = stages.select_best(core)
    assert best["trial"] == expected["trial"]
    assert best["metrics"] == pytest.approx(expected["metrics"])
    assert {t["trial"]["name"]: t["metrics"]["accuracy"] for t in trials} == pytest.approx(
        {t["trial"]["name"]: t["metrics"]["accuracy"] for t in core}
    )


@pytest.mark.capability("dagster", "conditional_branch")
def test_a_gate_below_threshold_skips_the_champion_branch(
    resumed: tuple[RunResult, str],
) -> None:
    failed, again = resumed
    home = Path(failed.tool_info["dagster_home"])
    checks = _events(home, again, DagsterEventType.ASSET_CHECK_EVALUATION)
    assert [c.event_specific_data.passed for c in checks] == [False]
    materialised = {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in _events(home, again, DagsterEventType.ASSET_MATERIALIZATION)
    }
    assert "sweep_evaluation" in materialised and "sweep_champion" not in materialised
    skipped = {e.step_key for e in _events(home, again, DagsterEventType.STEP_SKIPPED)}
    assert skipped == {"sweep_mlflow_run"}
    assert _step_stats(home, again)["sweep_mlflow_run"].status.value == "SKIPPED"


# ---------------------------------------------------------------------------------------------
# Dagster's CLI starts a run of the code location
# ---------------------------------------------------------------------------------------------


@pytest.mark.capability("dagster", "remote_trigger")
def test_the_cli_materialises_an_asset_into_the_instance(tmp_path: Path) -> None:
    home = instance.prepare_home(tmp_path / "home")
    settings = json.dumps(
        {
            "resources": {"sweep_settings": {"config": {"data_limit_train": 200}}},
            "execution": {"config": {"in_process": {}}},
        }
    )
    command = [
        str(Path(sys.executable).parent / "dagster"),
        *("asset", "materialize", "--select", "sweep_data"),
        *("-m", launch.DEFINITIONS_MODULE, "--config-json", settings),
    ]
    env = {**os.environ, **instance.instance_env(home)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with instance.open_instance(home) as dagster:
        (record,) = dagster.get_run_records()
        assert record.dagster_run.status.value == "SUCCESS"
        materialised = dagster.fetch_materializations(AssetKey("sweep_data"), limit=1).records
        assert materialised and materialised[0].run_id == record.dagster_run.run_id


# ---------------------------------------------------------------------------------------------
# the code location
# ---------------------------------------------------------------------------------------------


@pytest.mark.capability("dagster", "typed_parameters")
def test_dagster_validates_the_sweeps_typed_settings() -> None:
    job = sweep.sweep_job()
    good = sweep.run_config(SMALL.with_overrides(workers=3), None, False)
    assert good["execution"]["config"]["multiprocess"]["max_concurrent"] == 3
    assert validate_run_config(job, good)["resources"]["sweep_settings"]["config"]["trials"] == 4
    for wrong in ({"trials": "many"}, {"epochs": 1.5}, {"no_such_setting": 1}):
        bad = {"resources": {"sweep_settings": {"config": wrong}}}
        with pytest.raises(DagsterInvalidConfigError):
            validate_run_config(job, bad)


@pytest.mark.capability("dagster", "schedule")
def test_the_nightly_sweep_schedule_is_evaluated_by_dagster() -> None:
    from datetime import UTC, datetime

    schedule = next(s for s in defs.schedules or () if s.name == "sweep_nightly")
    assert schedule.job_name == "sweep_pipeline" and schedule.cron_schedule == "0 2 * * *"
    tick = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    with build_schedule_context(scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests or []
    assert validate_run_config(sweep.sweep_job(), request.run_config)
    assert request.run_config["execution"]["config"]["multiprocess"]["max_concurrent"] == 1
