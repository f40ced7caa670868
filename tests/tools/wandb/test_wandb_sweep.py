"""The W&B sweep, offline: one run per trial in the sweep's group, two trials at a time, the best
model in the group's ``evaluate`` run; every run read back with wandb's own reader.

One sweep runs for the whole file (4 trials, SimpleNN and DeepNN, 1 epoch, ``workers=2``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.registry import get_tool, load_runner
from mlopsbench.tools.wandb import adapter
from mlopsbench.tools.wandb import sweep as wandb_sweep
from mlopsbench.tools.wandb.readback import OfflineRun
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

CFG = SweepConfig(trials=4, models="simple,deep", epochs=1, workers=2, threshold=0.5)


@pytest.fixture(scope="module")
def sweep_run(make_request: Callable[..., RunRequest]) -> RunResult:
    return wandb_sweep.run(make_request("sweep-w2", CFG, usecase="sweep"))


@pytest.fixture(scope="module")
def group_runs(sweep_run: RunResult) -> dict[str, OfflineRun]:
    """Every offline run of the sweep's group in the run folder, read with wandb's reader."""
    run_dir = Path(sweep_run.tool_info["run_folder"]).parents[1]
    return wandb_sweep.read_group(run_dir, sweep_run.tool_info["group"])


def _trials(runs: dict[str, OfflineRun]) -> list[OfflineRun]:
    return [b for b in runs.values() if wandb_sweep.run_header(b).get("job_type") == "trial"]


def test_sweep_record_and_evidence(sweep_run: RunResult) -> None:
    sweep = sweep_run.tool_info["sweep"]
    assert sweep_run.status == "ok", sweep_run.error
    assert sweep["planned"] == sweep["finished"] == sweep["stored_trials"] == 4
    assert sweep["queryable"] is True and sweep["workers"] == 2
    assert sweep_run.metrics["accuracy"] == pytest.approx(sweep["best"]["accuracy"])
    assert set(sweep_run.tool_info["model_aliases"]) == {"latest", "candidate", "champion"}
    assert wandb_sweep.evidence(sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)
    assert load_runner("wandb", "sweep") is wandb_sweep.run
    assert get_tool("wandb").sweep == "sweep"


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


def test_every_trial_is_a_run_of_the_group(
    sweep_run: RunResult, group_runs: dict[str, OfflineRun]
) -> None:
    trials = _trials(group_runs)
    jobs = sorted(wandb_sweep.run_header(b).get("job_type") for b in group_runs.values())
    assert jobs == ["evaluate", "trial", "trial", "trial", "trial"]
    recorded = {row["name"]: row for row in sweep_run.tool_info["sweep"]["trials"]}
    assert sorted(b.overview["name"] for b in trials) == sorted(recorded)
    for back in trials:
        row = recorded[back.overview["name"]]
        assert back.state == "finished"
        # W&B keeps the config's JSON types (a float stays a float), but validates nothing
        assert back.config["lr"] == row["lr"] and back.config["batch_size"] == row["batch_size"]
        assert back.summary["accuracy"] == pytest.approx(row["accuracy"])
        assert len(adapter.history_of(back)) == CFG.epochs


def test_two_workers_run_two_trials_at_once(group_runs: dict[str, OfflineRun]) -> None:
    """The start times and runtimes W&B recorded: two trials' runs overlap in time."""
    spans = sorted(t for t in map(wandb_sweep.run_times, _trials(group_runs)) if t)
    assert len(spans) == 4
    assert any(
        a_start < b_end and b_start < a_end
        for i, (a_start, a_end) in enumerate(spans)
        for b_start, b_end in spans[i + 1 :]
    )


def test_wandb_sweep_needs_the_server_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the sweep is a group of runs: ``wandb.sweep`` cannot create a sweep offline."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing is reached anyway
    for name in ("WANDB_API_KEY", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(wandb.errors.UsageError, match="No API key"):
        wandb.sweep({"method": "grid", "parameters": {"lr": {"values": [0.1]}}}, project="x")


def test_a_failed_trial_fails_the_sweep_in_one_line(
    make_request: Callable[..., RunRequest], fail_stage: Callable[..., None]
) -> None:
    """A trial that raises in a worker: the record says so in one line, and the trial's
    offline run ended failed (its worker lives on, so no exit hook would have)."""
    fail_stage("mlopsbench.usecases.sweep.stages:run_trial")  # in the spawned workers
    cfg = SweepConfig(trials=1, models="simple", epochs=1, workers=2, threshold=0.5)
    request = make_request("sweep-fails", cfg, usecase="sweep")
    result = wandb_sweep.run(request)
    assert result.status == "failed" and "injected failure in run_trial" in result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    (folder, *_) = sorted((Path(request.out_dir) / "wandb").glob("offline-run-*"))
    back = wandb_sweep.read_run(folder)
    assert wandb_sweep.run_header(back)["job_type"] == "trial" and back.state == "failed"
