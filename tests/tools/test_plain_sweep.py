"""The baseline's sweep: the record every tool's sweep is measured against, from the CLI too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlopsbench.result import RunRequest
from mlopsbench.toolkit.registry import get_tool, load_runner
from mlopsbench.tools.plain import sweep as plain_sweep
from mlopsbench.usecases.sweep.config import SweepConfig


def test_the_sweep_record_holds_every_trial_and_the_gated_best(tmp_path: Path) -> None:
    cfg = SweepConfig(trials=4, models="simple,deep", epochs=1, threshold=0.5)
    result = plain_sweep.run(RunRequest(usecase="sweep", config=cfg, out_dir=tmp_path))
    sweep = result.tool_info["sweep"]
    assert result.status == "ok" and result.usecase == "sweep" and result.model == "4x-w1"
    assert sweep["planned"] == sweep["finished"] == sweep["stored_trials"] == 4
    assert sweep["queryable"] is True and sweep["workers"] == 1
    accuracies = [row["accuracy"] for row in sweep["trials"]]
    assert accuracies == sorted(accuracies, reverse=True)  # best first
    assert sweep["best"] == sweep["trials"][0]
    assert result.metrics["accuracy"] == sweep["best"]["accuracy"]
    assert result.gate and result.gate["passed"]
    assert set(result.timings) >= {"data", "trials", "evaluate"}
    assert Path(result.artifacts["model"]).parent.name == sweep["best"]["name"]
    assert len(result.history) == 1  # the best trial's epochs
    evidence = plain_sweep.evidence(result)
    assert evidence["final_metrics"] and evidence["model_artifact"] and evidence["plots"]


def test_tools_without_a_sweep_say_so_in_one_line() -> None:
    assert get_tool("plain").sweep == "sweep"
    assert load_runner("plain", "sweep") is plain_sweep.run


def test_run_sweep_from_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "run", "sweep", "--tool", "plain", "--out",
         str(tmp_path), "--trials", "2", "--models", "simple", "--epochs", "1", "--workers", "2",
         "--threshold", "0.5"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = tmp_path.glob("sweep-plain-*/result.json")
    sweep = json.loads(record.read_text())["tool_info"]["sweep"]
    assert sweep["workers"] == 2 and sweep["finished"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "run", "sweep", "--tool", "plain", "--out",
         str(tmp_path / "bad"), "--trials", "99"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "exceed" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
