"""The MLflow sweep: a parent run with one nested run per trial, two trials at a time, the best
trial's model registered and gated; everything read back from the store with MLflow's client.

One sweep runs for the whole file (4 trials, SimpleNN and DeepNN, 1 epoch, ``workers=2``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Store
from mlopsbench.result import EVIDENCE_KEYS, RunResult
from mlopsbench.toolkit.registry import get_tool, load_runner
from mlopsbench.tools.mlflow import sweep as mlflow_sweep
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

CFG = SweepConfig(trials=4, models="simple,deep", epochs=1, workers=2, threshold=0.5)


@pytest.fixture(scope="module")
def sweep_run(store: Store) -> RunResult:
    return mlflow_sweep.run(store.request("sweep-w2", CFG, usecase="sweep"))


@pytest.fixture(scope="module")
def trial_runs(sweep_run: RunResult, store: Store) -> list[Any]:
    """The nested runs under the sweep's parent run, as MLflow's search finds them."""
    info = sweep_run.tool_info
    return mlflow_sweep.stored_trials(store.client(), info["experiment_id"], info["run_id"])


def test_sweep_record_and_evidence(sweep_run: RunResult) -> None:
    sweep = sweep_run.tool_info["sweep"]
    assert sweep_run.status == "ok", sweep_run.error
    assert sweep["planned"] == sweep["finished"] == sweep["stored_trials"] == 4
    assert sweep["queryable"] is True and sweep["workers"] == 2
    assert sweep_run.metrics["validation_accuracy"] == sweep_run.metrics["accuracy"]
    assert sweep_run.metrics["accuracy"] == pytest.approx(sweep["best"]["accuracy"])
    assert mlflow_sweep.evidence(sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)
    assert load_runner("mlflow", "sweep") is mlflow_sweep.run
    assert get_tool("mlflow").sweep == "sweep"


def test_best_equals_the_cores_sequential_run(sweep_run: RunResult, tmp_path: Path) -> None:
    """Trials train with one thread: the pool's best is the core's best, run one by one."""
    data = stages.prepare_data(CFG, tmp_path)
    results = [
        stages.run_trial(CFG, data["data_path"], trial, tmp_path)
        for trial in stages.plan_trials(CFG)
    ]
    best = stages.select_best(results)
    found = sweep_run.tool_info["sweep"]["best"]
    assert {k: found[k] for k in stages.TRIAL_KEYS} == best["trial"]
    assert found["accuracy"] == best["metrics"]["accuracy"]


@pytest.mark.capability("mlflow", "mlflow_tracking")
def test_every_trial_is_a_nested_run_in_the_store(
    sweep_run: RunResult, trial_runs: list[Any], store: Store
) -> None:
    client = store.client()
    parent = client.get_run(sweep_run.tool_info["run_id"])
    assert parent.info.run_name == "sweep" and parent.info.status == "FINISHED"
    assert parent.data.params["workers"] == "2" and parent.data.params["trials"] == "4"
    recorded = {row["name"]: row for row in sweep_run.tool_info["sweep"]["trials"]}
    assert sorted(r.info.run_name for r in trial_runs) == sorted(recorded)
    for run in trial_runs:
        row = recorded[run.info.run_name]
        assert run.info.status == "FINISHED"
        # MLflow params are strings: the store keeps "0.003", not a float (no typed params)
        assert run.data.params["lr"] == str(row["lr"]) and run.data.params["model"] == row["model"]
        assert run.data.metrics["accuracy"] == pytest.approx(row["accuracy"])
        assert len(client.get_metric_history(run.info.run_id, "test_accuracy")) == CFG.epochs
    assert parent.data.tags["best_run_id"] == sweep_run.tool_info["best_run_id"]


def test_two_workers_run_two_trials_at_once(trial_runs: list[Any]) -> None:
    """The start and end times MLflow recorded: two trials' runs overlap in time."""
    spans = sorted((r.info.start_time, r.info.end_time) for r in trial_runs)
    assert any(
        a_start < b_end and b_start < a_end
        for i, (a_start, a_end) in enumerate(spans)
        for b_start, b_end in spans[i + 1 :]
    )


@pytest.mark.capability("mlflow", "mlflow_registry")
def test_the_best_model_is_registered_and_champion(sweep_run: RunResult, store: Store) -> None:
    client = store.client()
    info = sweep_run.tool_info
    version = client.get_model_version_by_alias(info["model_name"], "champion")
    assert str(version.version) == info["model_version"] and info["promoted"] is True
    assert version.run_id == info["run_id"] and version.tags["validation_status"] == "approved"
    folder = Path(sweep_run.artifacts["model"]).parent.name
    assert folder == info["sweep"]["best"]["name"]


def test_a_failed_trial_fails_the_sweep_in_one_line(
    store: Store, fail_stage: Callable[..., None]
) -> None:
    """A trial that raises in a worker: the record says so in one line; MLflow ends the trial's
    run and the parent run FAILED (nothing is left RUNNING)."""
    fail_stage("mlopsbench.usecases.sweep.stages:run_trial")  # in the spawned workers
    cfg = SweepConfig(trials=1, models="simple", epochs=1, workers=2, threshold=0.5)
    result = mlflow_sweep.run(store.request("sweep-fails", cfg, usecase="sweep"))
    assert result.status == "failed" and "injected failure in run_trial" in result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    info = result.tool_info
    client = store.client()
    assert client.get_run(info["run_id"]).info.status == "FAILED"
    trials = mlflow_sweep.stored_trials(client, info["experiment_id"], info["run_id"])
    assert trials and {r.info.status for r in trials} == {"FAILED"}
