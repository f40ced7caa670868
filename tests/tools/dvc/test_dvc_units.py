"""Fast checks of the DVC pipeline files, the project set-up and the adapter's parsing: no stage
process is started here."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsbench.errors import ConfigError
from mlopsbench.result import RunRequest
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.dvc import adapter, project, sweep
from mlopsbench.tools.dvc.pipeline import write_params
from mlopsbench.usecases.common.params import config_params, flat_values
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import all_usecases, get_usecase
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sweep.config import SweepConfig
from mlopsbench.usecases.sweep.stages import plan_trials

HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter|time\.time"
)


def _dvc_yaml(usecase: str) -> dict[str, Any]:
    return dict(yaml.safe_load(project.pipeline_file(usecase).read_text()))


def _with_default(config_class: type, field: str, value: Any) -> type:
    """The config class as if its source said ``field = value`` (a new class, same module)."""
    fields = [
        (f.name, f.type, dataclasses.field(default=value, metadata=f.metadata))
        if f.name == field
        else (f.name, f.type, f)
        for f in dataclasses.fields(config_class)
    ]
    patched = dataclasses.make_dataclass(
        config_class.__name__, fields, bases=(config_class,), frozen=True
    )
    patched.__module__ = config_class.__module__  # where its annotations' names resolve
    return patched


# ---------------------------------------------------------------------------------------------
# the pipeline folder
# ---------------------------------------------------------------------------------------------


def test_pipeline_holds_no_harness_plumbing() -> None:
    """pipeline/ is what a DVC user copies: no timing, no fault injection, no bookkeeping."""
    files = get_tool("dvc").pipeline_files()
    names = {p.relative_to(get_tool("dvc").pipeline_folder).as_posix() for p in files}
    assert names >= {
        "digits/dvc.yaml",
        "sentiment/dvc.yaml",
        "stages/prepare_data.py",
        "stages/build_model.py",
        "stages/evaluate.py",
        "write_params.py",
        "register_model.py",
    }
    assert not any(name.startswith("params") for name in names)  # written from the config
    for path in files:
        found = HARNESS_PLUMBING.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_every_use_case_has_its_pipeline(usecase: str) -> None:
    assert project.pipeline_file(usecase) == project.PIPELINE_DIR / usecase / "dvc.yaml"
    stages = _dvc_yaml(usecase)["stages"]
    assert list(stages) == ["prepare_data", list(stages)[1], "evaluate"]
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        assert script in stage["deps"], f"{name}: its own script is a dependency"
        assert (project.PIPELINE_DIR / script).is_file(), script


def test_a_use_case_without_a_pipeline_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"no DVC pipeline for the weather use case"):
        project.pipeline_file("weather")


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_stage_params_are_core_settings_and_cover_them(usecase: str) -> None:
    """Every setting a stage lists is one of the core config's; every core setting is listed by
    some stage (a new setting in the core fails here until a stage declares it)."""
    settings = {spec.name for spec in get_usecase(usecase).params()}
    listed = [set(stage.get("params", [])) for stage in _dvc_yaml(usecase)["stages"].values()]
    assert set().union(*listed) == settings


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_metrics_and_plots_declared(usecase: str) -> None:
    declared = _dvc_yaml(usecase)
    assert "eval/metrics.json" in declared["metrics"]
    assert "dvclive/metrics.json" in declared["metrics"]
    plots = [next(iter(p)) if isinstance(p, dict) else p for p in declared["plots"]]
    assert "dvclive/plots/metrics" in plots and "eval/confusion_matrix.png" in plots
    (artifact,) = declared["artifacts"].values()
    assert artifact["type"] == "model"


# ---------------------------------------------------------------------------------------------
# params.yaml from the core config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        DigitsConfig(model="deep", epochs=2, data=DigitsDataConfig(limit_train=100)),
        DigitsConfig(),
        SentimentConfig(smoke=True, sample_size=40, fine_tune_epochs=3),
        SentimentConfig(source="hf", fine_tune=True),
    ],
)
def test_params_yaml_rebuilds_the_core_config(cfg: Any) -> None:
    values = yaml.safe_load(write_params.params_yaml(flat_values(cfg)))
    assert list(values) == [spec.name for spec in config_params(type(cfg))]
    usecase = "digits" if isinstance(cfg, DigitsConfig) else "sentiment"
    assert get_usecase(usecase).config(values) == cfg


def test_write_params_cli(tmp_path: Path) -> None:
    """``python write_params.py digits --set ...`` as a DVC user creates params.yaml."""
    sets = ("--set", "model=simple", "--set", "data_limit_train=200")
    done = subprocess.run(
        [sys.executable, write_params.__file__, "digits", *sets],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    values = yaml.safe_load(done.stdout)
    assert values["model"] == "simple" and values["data_limit_train"] == 200
    assert values["epochs"] == DigitsConfig().epochs and values["data_path"] is None


def test_a_changed_core_default_reaches_params_yaml(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Change a default in the core config only: params.yaml (DVC's parameters) follows."""
    patched = _with_default(DigitsConfig, "epochs", 7)
    case = dataclasses.replace(get_usecase("digits"), config_class=patched)
    monkeypatch.setattr(write_params, "get_usecase", lambda name: case)
    write_params.main(["digits"])
    assert yaml.safe_load(capsys.readouterr().out)["epochs"] == 7
    # And what the adapter writes into the run's project, from a config of the patched class.
    written = write_params.params_yaml(project.project_values(patched(), {}))
    assert yaml.safe_load(written)["epochs"] == 7


# ---------------------------------------------------------------------------------------------
# the project: inputs, environment, DVC's output
# ---------------------------------------------------------------------------------------------


def test_local_inputs_are_copied_into_the_project(tmp_path: Path) -> None:
    data = tmp_path / "mine.npz"
    data.write_bytes(b"npz")
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(data)))
    root = tmp_path / "project"
    root.mkdir()
    inputs = project.copy_inputs(root, cfg)
    assert inputs == {"data_path": {"given": str(data), "path": "inputs/data/mine.npz"}}
    assert (root / "inputs" / "data" / "mine.npz").read_bytes() == b"npz"
    values = project.project_values(cfg, inputs)
    assert values["data_path"] == "inputs/data/mine.npz" and values["data_source"] == "npz"
    other = tmp_path / "other"
    other.mkdir()
    assert project.copy_inputs(other, DigitsConfig()) == {}  # the bundled digits: no file
    assert [p.name for p in (other / "inputs").iterdir()] == ["README.txt"]


def test_dvc_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///leaked.db")
    env = project.dvc_env(tmp_path, None, {"threads": "1"})
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # `python` of stages
    assert env["DVC_NO_ANALYTICS"] == "1"
    assert env["DVC_SITE_CACHE_DIR"].startswith(str(tmp_path))  # not /var/tmp/dvc
    assert "MLFLOW_TRACKING_URI" not in env  # the stage logs only where the run says
    assert env["OMP_NUM_THREADS"] == "1"
    relative = project.dvc_env(tmp_path, "sqlite:///x.db", {})["MLFLOW_TRACKING_URI"]
    assert relative == f"sqlite:///{Path('x.db').resolve()}"  # stages run in the project


REPRO_OUTPUT = """\
'inputs.dvc' didn't change, skipping
Stage 'prepare_data' didn't change, skipping
Running stage 'train':
> python stages/build_model.py digits data/data.npz train
Traceback (most recent call last):
  File "stages/build_model.py", line 40, in <module>
RuntimeError: injected failure in build_model
ERROR: failed to reproduce 'train': failed to run: python stages/build_model.py, exited with 1
"""


def test_dvc_output_is_read_into_stages_and_one_line() -> None:
    done = project.DvcRun(("repro",), 1, 1.0, REPRO_OUTPUT.splitlines())
    assert done.skipped == ["inputs.dvc", "prepare_data"]
    assert done.ran == ["train"]
    assert done.failure() == (
        "dvc repro failed in stage train: RuntimeError: injected failure in build_model"
    )
    silent = project.DvcRun(("repro",), 255, 1.0, ["ERROR: unexpected error - boom"])
    assert silent.failure() == "dvc repro failed: ERROR: unexpected error - boom"


# ---------------------------------------------------------------------------------------------
# the experiment option
# ---------------------------------------------------------------------------------------------


def test_default_experiment_is_a_stricter_gate() -> None:
    assert adapter.experiment_setting(DigitsConfig(threshold=0.9), None) == adapter.Setting(
        "threshold", 0.95
    )
    assert adapter.experiment_setting(DigitsConfig(threshold=1.0), None).value == 0.95
    assert adapter.experiment_setting(SentimentConfig(), None).arg == "threshold=0.85"


def test_experiment_option() -> None:
    assert adapter.experiment_setting(DigitsConfig(), "epochs=3").arg == "epochs=3"
    assert adapter.experiment_setting(DigitsConfig(), "none") is None
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        adapter.experiment_setting(DigitsConfig(), "speed=3")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        adapter.experiment_setting(DigitsConfig(), "epochs")


# ---------------------------------------------------------------------------------------------
# the sweep: its pipeline, its --set-param, its preflight
# ---------------------------------------------------------------------------------------------


def test_sweep_pipeline_is_data_trial_evaluate() -> None:
    stages = _dvc_yaml("sweep")["stages"]
    assert list(stages) == ["prepare_data", sweep.TRIAL_STAGE, "evaluate"]
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        assert script in stage["deps"], f"{name}: its own script is a dependency"
        assert (project.PIPELINE_DIR / script).is_file(), script
    # Only the trial stage reads the trial's point, so the data stage is shared by all trials.
    assert [n for n, s in stages.items() if sweep.TRIAL_KEY in s["params"]] == ["train_trial"]
    declared = _dvc_yaml("sweep")
    assert {"eval/metrics.json", sweep.TRIAL_METRICS} <= set(declared["metrics"])
    (artifact,) = declared["artifacts"].values()
    assert artifact["type"] == "model" and "${trial.name}" in artifact["path"]


def test_sweep_settings_are_read_by_a_stage_or_the_queue() -> None:
    """Every SweepConfig setting is a stage's param or one the queueing reads (which trials,
    how many at once); nothing else is listed."""
    settings = {spec.name for spec in get_usecase("sweep").params()}
    listed = set().union(*(set(s["params"]) for s in _dvc_yaml("sweep")["stages"].values()))
    assert listed - {sweep.TRIAL_KEY} | set(sweep.QUEUE_SETTINGS) == settings
    assert not listed & set(sweep.QUEUE_SETTINGS)


def test_sweep_set_params_are_the_planned_trial() -> None:
    (trial,) = plan_trials(SweepConfig(trials=1, models="deep", learning_rates="0.01"))
    args = sweep.set_params(trial)
    assert args[::2] == ["--set-param"] * 5
    assert dict(arg.split("=", 1) for arg in args[1::2]) == {
        "trial.index": "0",
        "trial.name": "trial-00",
        "trial.model": "deep",
        "trial.lr": "0.01",
        "trial.batch_size": str(trial["batch_size"]),
    }


def test_sweep_bad_queue_timeout_fails_first(tmp_path: Path) -> None:
    request = RunRequest(
        usecase="sweep",
        config=SweepConfig(trials=1),
        out_dir=tmp_path / "run",
        options={"queue_timeout": "soon"},
    )
    with pytest.raises(ConfigError, match="queue_timeout must be a positive number"):
        sweep.run(request)
    assert not (tmp_path / "run").exists()
