"""The sweep DAG for real: trials as a mapped task, through dag.test() and a LocalExecutor.

``run_trial`` is expanded over ``plan_trials``' list at run time; the tests check the instances
Airflow stored (models after dag.test, the REST API on a deployment), the fan-in's choice against
the core's own sequential sweep, the short-circuit gate and that two slots run two trials at once.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest
from mlopsbench.support import postgres
from mlopsbench.tools.airflow import sweep
from mlopsbench.tools.airflow.pipeline.mlopsbench_sweep import PROMOTION_FILE
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

# Small and quick: two MLPs, one epoch, 180 test images (t-SNE cost grows with them).
QUICK_DATA = DigitsDataConfig(test_fraction=0.1)

needs_postgres = pytest.mark.skipif(
    not postgres.installed(),
    reason="PostgreSQL is not installed (apt-get install postgresql)",
)


def _core_best(cfg: SweepConfig, folder: Path) -> dict[str, Any]:
    """The core's sweep without any tool: every trial in this process, one after the other."""
    data = stages.prepare_data(cfg, folder)
    results = [stages.run_trial(cfg, data["data_path"], t, folder) for t in stages.plan_trials(cfg)]
    return stages.select_best(results)


@pytest.mark.slow
@pytest.mark.timeout(450)
@pytest.mark.capability("airflow", "fan_out_in", "dynamic_task_count", "conditional_branch")
def test_dag_test_maps_one_instance_per_trial_and_picks_the_core_s_best(
    tmp_path: Path, quiet_threads: None
) -> None:
    # 3 trials, not the DAG's default of 8: the count comes from the run's conf.
    cfg = SweepConfig(trials=3, models="simple,deep", epochs=1, threshold=0.5, data=QUICK_DATA)
    result = sweep.run(RunRequest(usecase="sweep", config=cfg, out_dir=tmp_path / "run"))

    assert result.status == "ok", result.error
    info = result.tool_info
    assert info["executor"] == "dag.test()" and info["state"] == "success"
    # Airflow expanded run_trial at run time into as many instances as the param asked for,
    # and holds each of them (read back through its models) with its XCom.
    assert info["mapped_instances"] == cfg.trials == info["sweep"]["stored_trials"]
    assert sorted(info["trial_instances"]) == list(range(cfg.trials))
    assert {t["state"] for t in info["trial_instances"].values()} == {"success"}
    # The fan-in chose what the core's own sequential sweep chooses.
    best = _core_best(cfg, tmp_path / "core")
    assert info["sweep"]["best"]["name"] == best["trial"]["name"]
    assert result.metrics["accuracy"] == pytest.approx(best["metrics"]["accuracy"], abs=1e-9)
    # The short-circuit gate let the promotion run: it names the best trial's model. (The
    # other way round, a gate that fails skipping it, is the LocalExecutor test below.)
    assert info["task_states"]["quality_gate"] == "success"
    assert info["task_states"]["promote_best"] == "success"
    promoted = json.loads(Path(info["promoted"]).read_text())
    assert Path(info["promoted"]).name == PROMOTION_FILE
    assert promoted["name"] == best["trial"]["name"] and Path(promoted["model_dir"]).is_dir()
    assert sweep.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, True)


@pytest.mark.slow
@needs_postgres
@pytest.mark.timeout(600)
@pytest.mark.capability("airflow", "fan_out_in", "conditional_branch", "postgres_store")
def test_two_workers_run_two_mapped_trials_at_once_on_a_local_executor(
    service_dir: Path, quiet_threads: None
) -> None:
    # A gate no model passes: the sweep succeeds, the short-circuit skips the promotion.
    # Three trials on two slots: whichever slot frees first takes the third, so two of them
    # overlap even when one slot is still handing back the task before run_trial.
    cfg = SweepConfig(trials=3, models="simple", epochs=1, threshold=0.999, workers=2)
    cfg = cfg.with_overrides(data=QUICK_DATA)
    result = sweep.run(RunRequest(usecase="sweep", config=cfg, out_dir=service_dir / "run"))

    assert result.status == "gate_failed", result.error
    info = result.tool_info
    assert info["executor"] == "LocalExecutor" and info["parallelism"] == 2
    assert info["database"] == "postgres"
    # The mapped instances as the REST API lists them: both succeeded, and they ran at once.
    spans = info["trial_instances"]
    assert sorted(spans) == [0, 1, 2] and info["sweep"]["stored_trials"] == 3
    assert {span["label"] for span in spans.values()} == {"trial-00", "trial-01", "trial-02"}
    assert _overlapping(list(spans.values())), spans
    assert info["state"] == "success"
    assert info["task_states"]["quality_gate"] == "success"
    assert info["task_states"]["promote_best"] == "skipped" and info["promoted"] is None
    assert not (Path(info["artifact_dir"]) / PROMOTION_FILE).exists()
    # (The evidence read from a stopped deployment's PostgreSQL is the adapter's helper, checked
    # in test_adapter_executors.py: not repeated here, the deployment is the suite's cost.)


def test_dag_test_cannot_run_trials_side_by_side() -> None:
    assert sweep.sweep_executor({}, 1) == "dag-test"
    assert sweep.sweep_executor({}, 3) == "local"
    assert sweep.sweep_executor({"executor": "celery"}, 2) == "celery"
    with pytest.raises(Exception, match="runs one task at a time"):
        sweep.sweep_executor({"executor": "dag-test"}, 2)


def _overlapping(spans: list[dict[str, Any]]) -> bool:
    """Whether two of the spans (ISO start/end dates) ran at the same time."""
    times = sorted(
        (datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in spans
    )
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(times))
