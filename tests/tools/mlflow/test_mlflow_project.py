"""MLflow Projects: ``mlflow run`` starts the sweep from a shell or CI; the MLproject's defaults
are the core's. MLflow does not check a ``float`` parameter (only ``path`` and ``uri``): the
entry point's own options refuse a bad value, so typed parameters are not claimed for MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlopsbench.toolkit.registry import get_tool
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.sweep.config import SweepConfig

PROJECT = get_tool("mlflow").pipeline_folder
# Left in this process by earlier runs: `mlflow run` refuses an experiment id beside a name.
MLFLOW_RUN_CONTEXT = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")
MLPROJECT = yaml.safe_load((PROJECT / "MLproject").read_text())


def _mlflow_run(tmp_path: Path, *params: str) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    inherited = {k: v for k, v in os.environ.items() if k not in MLFLOW_RUN_CONTEXT}
    env = {
        **inherited,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # `python` is this env's
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(PROJECT), "-e", "sweep"]
    command += ["--env-manager", "local", "--experiment-name", "mlopsbench-sweep"]
    for param in ("out=" + str(tmp_path / "out"), *params):
        command += ["-P", param]
    return subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False
    )


@pytest.mark.parametrize(
    ("entry", "config"), [("digits", DigitsConfig()), ("sweep", SweepConfig())]
)
def test_the_mlproject_defaults_are_the_cores(entry: str, config: object) -> None:
    declared = MLPROJECT["entry_points"][entry]["parameters"]
    for name, spec in declared.items():
        if name == "out":
            continue
        core = getattr(config, name)
        assert (float(spec["default"]) if spec["type"] == "float" else spec["default"]) == core


@pytest.mark.capability("mlflow", "remote_trigger")
def test_mlflow_run_starts_the_sweep_and_leaves_type_checks_to_the_script(tmp_path: Path) -> None:
    refused = _mlflow_run(tmp_path / "bad", "trials=four")
    assert refused.returncode != 0
    # MLflow started the entry point with "four": the script's option parser refused it.
    assert "argument --trials: invalid int value: 'four'" in refused.stderr

    done = _mlflow_run(
        tmp_path, "trials=2", "models=simple", "epochs=1", "threshold=0.5", "workers=1"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlopsbench-sweep")
    runs = client.search_runs([experiment.experiment_id])
    (project_run,) = [r for r in runs if "mlflow.project.entryPoint" in r.data.tags]
    assert project_run.data.tags["mlflow.project.entryPoint"] == "sweep"
    assert project_run.info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == project_run.info.run_id]
    assert len(trials) == 2  # the project's run is the sweep's parent run
