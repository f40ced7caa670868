"""The sweep as DVC experiments: queued with ``--set-param``, run by ``dvc queue start --jobs 2``,
listed by ``dvc exp show --json``, the best applied and evaluated.

One sweep per module (2 trials, simple/deep, 1 epoch, a small training set: each DVC
experiment costs ~15 s of its own, so 2 trials, both running at once, keep CI short); the
core's own sequential run of the same trials is the reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.dvc import project, sweep
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

pytestmark = pytest.mark.slow

CFG = SweepConfig(
    trials=2,
    sampler="grid",  # one simple and one deep trial, at a rate that learns in one short epoch
    models="simple,deep",
    learning_rates="0.003",
    batch_sizes="32",
    epochs=1,
    workers=2,
    threshold=0.5,
    data=DigitsDataConfig(limit_train=400, test_fraction=0.1),
)


@pytest.fixture(scope="module")
def sweep_run(make_request: Callable[..., RunRequest]) -> RunResult:
    return sweep.run(make_request("sweep", CFG, usecase="sweep"))


def _root(result: RunResult) -> Path:
    return Path(result.tool_info["run_dir"])


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A DVC command as a user types it in the project."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=project.dvc_env(root, None, {"threads": "1"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert not check or done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def _all_gone(pids: list[int], wait_s: float = 30.0) -> bool:
    """Every process has exited within ``wait_s`` (workers stop after their current task)."""
    deadline = time.monotonic() + wait_s
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _shown(result: RunResult) -> list[dict[str, Any]]:
    """The sweep's experiments in ``dvc exp show --json`` (of the baseline they branched off)."""
    root = _root(result)
    baseline = result.tool_info["baseline"]
    rows = json.loads(dvc(root, "exp", "show", "--json", "--rev", baseline).stdout)
    (entry,) = [row for row in rows if row["rev"] == baseline]
    return [rev for exp in entry["experiments"] for rev in exp["revs"]]


@pytest.mark.capability("dvc", "fan_out_in", "dynamic_task_count", "remote_trigger")
def test_queue_runs_two_trials_at_once(sweep_run: RunResult) -> None:
    """The planned trials (a run-time count) become as many queued experiments;
    ``dvc queue start --jobs 2`` runs two at once (as DVC's own queue status reported), and the
    best is joined from all."""
    assert sweep_run.status == "ok", sweep_run.error
    queue = sweep_run.tool_info["queue"]
    names = [trial["name"] for trial in stages.plan_trials(CFG)]
    assert queue["jobs"] == 2 and queue["states"] == dict.fromkeys(names, "Success")
    assert queue["max_running"] == 2 and len(set(queue["running_together"])) == 2
    summary = sweep_run.tool_info["sweep"]
    assert summary["finished"] == summary["stored_trials"] == CFG.trials and summary["queryable"]
    assert [e["name"] for e in sweep_run.tool_info["experiments"]] == names
    assert sweep_run.tool_info["repro_evaluate"]["ran"] == ["evaluate"]
    # `dvc queue stop` ended every worker `dvc queue start` detached (none is left behind).
    workers = _root(sweep_run) / ".dvc" / "tmp" / "exps" / "celery"
    pids = [int(path.read_text()) for path in workers.glob("*.pid")]
    assert len(pids) == 2 and _all_gone(pids)
    assert {"prepare_data", "train_trial"} <= set(sweep_run.tool_info["repro_evaluate"]["skipped"])


def test_best_equals_the_core_sequential_run(sweep_run: RunResult, tmp_path: Path) -> None:
    data = stages.prepare_data(CFG, tmp_path)
    results = [
        stages.run_trial(CFG, data["data_path"], t, tmp_path) for t in stages.plan_trials(CFG)
    ]
    core = {row["name"]: row["accuracy"] for row in stages.trial_table(results)}
    best = stages.select_best(results)
    table = sweep_run.tool_info["sweep"]["trials"]
    assert {row["name"]: row["accuracy"] for row in table} == pytest.approx(core, abs=1e-9)
    assert sweep_run.tool_info["sweep"]["best"]["name"] == best["trial"]["name"]
    assert sweep_run.metrics["accuracy"] == pytest.approx(best["metrics"]["accuracy"], abs=1e-9)


@pytest.mark.capability("dvc", "typed_parameters")
def test_exp_show_lists_every_trial_typed(sweep_run: RunResult) -> None:
    """``dvc exp show --json``: each trial an experiment with the ``--set-param`` values as
    typed YAML (lr a float, batch_size an int) and its accuracy; a bad value is refused."""
    table = {row["name"]: row for row in sweep_run.tool_info["sweep"]["trials"]}
    shown = _shown(sweep_run)
    assert sorted(rev["name"] for rev in shown) == sorted(table)
    for rev in shown:
        trial = rev["data"]["params"]["params.yaml"]["data"]["trial"]
        row = table[rev["name"]]
        assert trial == {key: row[key] for key in stages.TRIAL_KEYS}
        assert type(trial["lr"]) is float and type(trial["batch_size"]) is int
        metrics = rev["data"]["metrics"][sweep.TRIAL_METRICS]["data"]
        assert metrics["accuracy"] == pytest.approx(row["accuracy"], abs=1e-9)
    # The stage validates what it is given through the core's typed config.
    refused = dvc(
        _root(sweep_run), "exp", "run", "--temp", "-S", "epochs=0", "train_trial", check=False
    )
    assert refused.returncode != 0
    assert "epochs must be >= 1" in refused.stdout + refused.stderr


def test_workspace_holds_the_best_trial_evaluated(sweep_run: RunResult) -> None:
    root = _root(sweep_run)
    best = sweep_run.tool_info["sweep"]["best"]
    params = json.loads(dvc(root, "params", "diff", "--all", "--json").stdout)["params.yaml"]
    assert params["trial.name"]["new"] == best["name"]
    assert json.loads(dvc(root, "status", "--json").stdout) == {}
    assert sweep_run.tool_info["registered"]["path"] == f"train/{best['name']}/model"
    assert sweep_run.artifacts["model"] == str(root / "train" / best["name"] / "model")
    assert sweep.evidence(sweep_run) == dict.fromkeys(EVIDENCE_KEYS, True)
