"""The sweep on Prefect: ``run_trial.map`` on a process-pool task runner sized by ``workers``,
every trial a task run read back through Prefect's client; a failed sweep resumed from the
cache, a trial retried with back-off, the promotion skipped below the gate; the flow deployed
on a cron schedule.

The runs here go to one Prefect server for the module (``prefect server start``, SQLite): each
run on a temporary API would start one of its own (the slowest part of a small sweep), and the
server keeps the history the resumed sweep and the deployment are read back from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.net import free_port
from mlopsbench.tools.prefect import sweep
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

pytestmark = pytest.mark.slow

TRIAL_STAGE = "mlopsbench.usecases.sweep.stages:run_trial"
FAIL_ONCE_ENV = "MLOPSBENCH_TEST_FAIL_ONCE"  # tests/conftest.py: the fault's marker file
# A 10 % test split keeps evaluate_best's t-SNE short.
SMALL_DATA = DigitsDataConfig(test_fraction=0.1)
SWEEP = SweepConfig(
    trials=4, models="simple,deep", epochs=1, workers=2, threshold=0.5, data=SMALL_DATA
)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mlopsbench.support.processes import stop
    from mlopsbench.tools.prefect import server

    proc = server.start_server(free_port(), home=tmp_path_factory.mktemp("prefect-server"))
    try:
        yield server.api_url(proc)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def on_server(
    make_request: Callable[..., RunRequest], prefect_api: str
) -> Callable[..., RunRequest]:
    def make(name: str, cfg: SweepConfig) -> RunRequest:
        return make_request(name, cfg, usecase="sweep", options={"prefect_api_url": prefect_api})

    return make


@pytest.fixture(scope="module")
def sweep_run(on_server: Callable[..., RunRequest]) -> RunResult:
    return sweep.run(on_server("sweep-w2", SWEEP))


@pytest.mark.capability("prefect", "fan_out_in", "dynamic_task_count")
def test_the_sweep_finds_the_core_sequential_best(sweep_run: RunResult, tmp_path: Path) -> None:
    """Four ``run_trial`` task runs (a count known only once ``plan`` returned), joined by
    ``select_best``: the same best trial as the core's trials run one after the other."""
    assert sweep_run.status == "ok", sweep_run.error
    info = sweep_run.tool_info
    assert info["task_runner"] == "ProcessPoolTaskRunner(max_workers=2)"
    assert sorted(run["name"] for run in info["trial_runs"]) == [f"trial-0{i}" for i in range(4)]
    assert {run["state_type"] for run in info["trial_runs"]} == {"COMPLETED"}
    data = stages.prepare_data(SWEEP, tmp_path)
    sequential = [
        stages.run_trial(SWEEP, data["data_path"], trial, tmp_path)
        for trial in stages.plan_trials(SWEEP)
    ]
    best = stages.select_best(sequential)
    assert info["sweep"]["best"]["name"] == best["trial"]["name"]
    # Every trial, not only the best: trials in parallel processes reproduce the sequential ones.
    found = {row["name"]: (row["accuracy"], row["loss"]) for row in info["sweep"]["trials"]}
    assert found == {
        r["trial"]["name"]: (r["metrics"]["accuracy"], r["metrics"]["loss"]) for r in sequential
    }
    assert sweep_run.params == SWEEP.to_dict()  # the flow's typed config parameter, as stored


@pytest.mark.capability("prefect", "fan_out_in")
def test_every_trial_is_a_task_run_queryable_through_the_client(sweep_run: RunResult) -> None:
    record = sweep.adapter.read_back(sweep_run)  # what evidence() reads, in a new process
    assert record is not None
    assert sweep.recorded_evidence(record, sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)
    trials = record.runs_of("run_trial")
    assert len(trials) == 4 == sweep_run.tool_info["sweep"]["stored_trials"]
    assert all("plan" in run.upstream for run in trials)  # one task run per planned trial
    assert record.upstream_of("select_best") == ("run_trial",)  # the fan-in
    stored = {run.result["trial"]["name"]: run.result["metrics"]["accuracy"] for run in trials}
    rows = sweep_run.tool_info["sweep"]["trials"]
    assert stored == {row["name"]: row["accuracy"] for row in rows}


@pytest.mark.capability("prefect", "fan_out_in")
def test_two_workers_run_two_trial_task_runs_at_once(sweep_run: RunResult) -> None:
    """Start and end times as Prefect's API recorded them: two trial task runs overlap."""
    runs = sweep_run.tool_info["trial_runs"]
    overlapping = [
        (a["name"], b["name"])
        for i, a in enumerate(runs)
        for b in runs[i + 1 :]
        if a["start_time"] < b["end_time"] and b["start_time"] < a["end_time"]
    ]
    assert overlapping


@pytest.mark.capability("prefect", "resume_cache", "retries_backoff", "conditional_branch")
def test_a_failed_sweep_resumes_from_the_cache(
    on_server: Callable[..., RunRequest],
    fail_stage: Callable[..., None],
    sweep_run: RunResult,
) -> None:
    """Run 1: trial-00 fails on bad input (not retried), trial-01 finishes, the flow run
    fails. Run 2, same Prefect home and result storage: trial-01 and the data are ``Cached``;
    trial-00 fails once more (transient), is retried after the back-off and passes; the gate
    (threshold 1.0) fails, so ``promote_model`` never runs, where the passing sweep promoted."""
    cfg = SweepConfig(
        trials=2, models="simple", epochs=1, workers=1, threshold=1.0, data=SMALL_DATA
    )
    request = on_server("sweep-resumed", cfg)
    fail_stage(TRIAL_STAGE, "DataError", once=True)
    first = sweep.run(request)
    assert first.status == "failed" and "in task run trial-00 failed" in (first.error or "")
    states = {run["name"]: run["state_name"] for run in first.tool_info["trial_runs"]}
    assert states == {"trial-00": "Failed", "trial-01": "Completed"}

    Path(os.environ[FAIL_ONCE_ENV]).unlink()  # the fault strikes once more, now transient
    fail_stage(TRIAL_STAGE, "RuntimeError", once=True)
    second = sweep.run(request)
    assert second.status == "gate_failed", second.error
    runs = {run["name"]: run for run in second.tool_info["trial_runs"]}
    assert runs["trial-01"]["state_name"] == "Cached"  # not trained again
    assert runs["trial-00"]["state_name"] == "Completed" and runs["trial-00"]["run_count"] == 2
    assert second.tool_info["task_state_names"]["prepare"] == "Cached"
    assert second.tool_info["flow_run_id"] != first.tool_info["flow_run_id"]
    # The branch taken, as Prefect recorded it: promoted past the gate, skipped below it.
    assert second.tool_info["task_states"]["quality_gate"] == "FAILED"
    assert "promote_model" not in second.tool_info["task_states"]
    assert sweep_run.tool_info["task_states"]["promote_model"] == "COMPLETED"


@pytest.mark.capability("prefect", "schedule")
def test_the_flow_deploys_on_a_cron_schedule(prefect_api: str) -> None:
    """``to_deployment(cron=...)`` registered with the server, read back through the client."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from mlopsbench.tools.prefect.pipeline.sweep_flow import sweep_pipeline

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        deployment = sweep_pipeline.to_deployment(
            "nightly", cron="0 3 * * *", parameters={"config": {"trials": 2, "workers": 2}}
        )
        deployment_id = deployment.apply()
        with get_client(sync_client=True) as client:
            stored = client.read_deployment(deployment_id)
    assert stored.name == "nightly" and stored.entrypoint.endswith("sweep_flow.py:sweep_pipeline")
    (schedule,) = stored.schedules
    assert schedule.active and schedule.schedule.cron == "0 3 * * *"
    assert stored.parameters == {"config": {"trials": 2, "workers": 2}}
