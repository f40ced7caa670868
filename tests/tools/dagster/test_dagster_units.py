"""Fast checks of the Dagster pipeline and adapter: no job is materialised here."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.result import EVIDENCE_KEYS, RunResult
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.dagster import adapter, instance, launch, readback
from mlopsbench.tools.dagster.pipeline import gate, metadata, resources
from mlopsbench.tools.dagster.pipeline.definitions import defs
from mlopsbench.usecases.common.params import config_params, flat_values
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import all_usecases, get_usecase
from mlopsbench.usecases.sentiment.config import SentimentConfig

HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter|time\.time"
)
USECASES = [u.name for u in all_usecases()]


def _with_default(config_class: type, field: str, value: Any) -> type:
    """The config class as if its source said ``field = value`` (as tests/usecases does)."""
    fields = [
        (f.name, f.type, dataclasses.field(default=value, metadata=f.metadata))
        if f.name == field
        else (f.name, f.type, f)
        for f in dataclasses.fields(config_class)
    ]
    patched = dataclasses.make_dataclass(
        config_class.__name__, fields, bases=(config_class,), frozen=True
    )
    patched.__module__ = config_class.__module__
    return patched


# ---------------------------------------------------------------------------------------------
# the pipeline folder
# ---------------------------------------------------------------------------------------------


def test_pipeline_holds_no_harness_plumbing() -> None:
    """pipeline/ is what a Dagster user copies: no timing, no fault injection, no bookkeeping."""
    files = get_tool("dagster").pipeline_files()
    assert {p.name for p in files} >= {
        "definitions.py",
        "digits_assets.py",
        "sentiment_assets.py",
        "resources.py",
    }
    for path in files:
        found = HARNESS_PLUMBING.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


@pytest.mark.parametrize("usecase", USECASES)
def test_every_use_case_has_its_job_and_settings(usecase: str) -> None:
    job = launch.resolve_job(defs, usecase)
    assert job.name == f"{usecase}_pipeline"
    assert launch.settings_key(usecase) in defs.resources
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert keys == {
        f"{usecase}_{s}" for s in ("data", "model", "evaluation", "champion", "mlflow_run")
    }


def test_a_use_case_without_a_job_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"no Dagster job weather_pipeline for the weather use"):
        launch.resolve_job(defs, "weather")


@pytest.mark.parametrize("usecase", USECASES)
def test_the_gate_is_a_blocking_check_on_the_evaluation(usecase: str) -> None:
    (check,) = [c for c in defs.asset_checks or () if usecase in c.node_def.name]
    (spec,) = check.check_specs
    assert spec.name == f"{usecase}_quality_gate"
    assert spec.asset_key.to_user_string() == f"{usecase}_evaluation"
    assert spec.blocking


# ---------------------------------------------------------------------------------------------
# parameters from the core config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("usecase", USECASES)
def test_settings_fields_are_the_core_settings(usecase: str) -> None:
    """Name, default, type, optionality and help of every field come from the config."""
    settings = type(defs.resources[launch.settings_key(usecase)])
    fields = settings.model_fields
    specs = config_params(get_usecase(usecase).config_class)
    assert list(fields) == [spec.name for spec in specs]
    for spec in specs:
        field = fields[spec.name]
        assert field.default == spec.default, spec.name
        assert field.description == spec.description, spec.name
        allowed = {spec.kind, type(None)} if spec.optional else {spec.kind}
        assert set(getattr(field.annotation, "__args__", (field.annotation,))) == allowed


def test_a_changed_core_default_reaches_the_settings() -> None:
    """Change a default in the core config only: the settings resource follows."""
    patched = _with_default(DigitsConfig, "epochs", 11)
    settings = resources.core_settings(patched)
    assert settings.model_fields["epochs"].default == 11
    assert settings().core_config() == patched()


def test_a_changed_core_default_reaches_the_code_location(tmp_path: Path) -> None:
    """The same through the code location a user loads (``dagster dev -m ...``): the job's run
    config schema shows the new default, with nothing in the tool's folder edited."""
    script = (
        "from mlopsbench.usecases.digits.config import DigitsConfig\n"
        "DigitsConfig.__dataclass_fields__['epochs'].default = 11\n"
        f"from {launch.DEFINITIONS_MODULE} import defs\n"
        "job = defs.resolve_job_def('digits_pipeline')\n"
        "fields = job.run_config_schema.config_type.fields['resources'].config_type.fields\n"
        "epochs = fields['digits_settings'].config_type.fields['config'].config_type.fields['epochs']\n"
        "print(epochs.default_value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "11"


@pytest.mark.parametrize(
    ("usecase", "cfg"),
    [
        ("digits", DigitsConfig(model="deep", epochs=2, data=DigitsDataConfig(limit_train=70))),
        ("sentiment", SentimentConfig(smoke=True, sample_size=40, fine_tune_epochs=3)),
        ("sentiment", SentimentConfig(source="hf", fine_tune=True)),
    ],
)
def test_run_config_rebuilds_the_core_config(usecase: str, cfg: Any) -> None:
    """The run config the adapter builds is valid for the job and rebuilds exactly the config."""
    from dagster import validate_run_config

    config = launch.run_config(usecase, cfg, "sqlite:///x.db", show_progress=False)
    validate_run_config(launch.resolve_job(defs, usecase), config)
    values = config["resources"][launch.settings_key(usecase)]["config"]
    assert values == flat_values(cfg)
    settings = type(defs.resources[launch.settings_key(usecase)])
    assert settings(**values).core_config() == cfg
    assert config["resources"]["mlflow"]["config"]["tracking_uri"] == "sqlite:///x.db"
    assert launch.run_config(usecase, cfg, None, False)["resources"]["mlflow"]["config"] == {
        "tracking_uri": ""
    }


def test_settings_reject_what_the_core_rejects() -> None:
    settings = type(defs.resources["digits_settings"])
    with pytest.raises(ConfigError, match="unknown model"):
        settings(model="resnet").core_config()


# ---------------------------------------------------------------------------------------------
# metadata and the gate
# ---------------------------------------------------------------------------------------------


def test_stage_metadata_types(tmp_path: Path) -> None:
    from dagster import MetadataValue

    png = tmp_path / "confusion_matrix.png"
    png.write_bytes(b"\x89PNG fake")
    found = metadata.stage_metadata(
        {
            "data_path": str(tmp_path / "data.npz"),
            "history_path": None,
            "n_train": 10,
            "seconds": 1.5,
            "source": "sklearn:load_digits",
            "history": [{"epoch": 1, "loss": 0.5}],
            "metrics": {"accuracy": 0.9, "macro_f1": 0.8, "f1_3": 0.7},
            "artifacts": {"confusion_matrix": str(png), "metrics": str(tmp_path / "m.json")},
        }
    )
    assert found["data_path"] == MetadataValue.path(str(tmp_path / "data.npz"))
    assert "history_path" not in found  # None: nothing to show
    assert found["n_train"] == MetadataValue.int(10)
    assert found["seconds"] == MetadataValue.float(1.5)
    assert found["source"] == MetadataValue.text("sklearn:load_digits")
    assert found["history"] == MetadataValue.json([{"epoch": 1, "loss": 0.5}])
    assert found["accuracy"] == MetadataValue.float(0.9)  # lifted: plotted across runs
    assert "f1_3" not in found  # per class: only in the metrics JSON
    assert found["metrics"].value == {"accuracy": 0.9, "macro_f1": 0.8, "f1_3": 0.7}
    assert found["confusion_matrix_plot"].value.startswith("![confusion_matrix](data:image/png")
    assert "metrics_plot" not in found


def test_gate_check_is_an_error_when_below() -> None:
    from dagster import AssetCheckSeverity

    below = gate.gate_check({"metric": "accuracy", "value": 0.8, "threshold": 0.9, "passed": False})
    assert not below.passed and below.severity == AssetCheckSeverity.ERROR
    assert below.description == "accuracy 0.8000 is below 0.90"
    above = gate.gate_check({"metric": "accuracy", "value": 0.95, "threshold": 0.9, "passed": True})
    assert above.passed and above.metadata["value"].value == 0.95


def test_a_model_below_its_gate_is_never_promoted() -> None:
    from dagster import Failure

    model = {"model_dir": "/m", "model_name": "simple"}
    failed = {"gate": {"metric": "accuracy", "value": 0.5, "threshold": 0.9, "passed": False}}
    with pytest.raises(Failure, match="not promoted"):
        gate.promote(model, failed)
    passed = {"gate": {**failed["gate"], "value": 0.95, "passed": True}}
    assert gate.promote(model, passed).value == {**model, "accuracy": 0.95}


# ---------------------------------------------------------------------------------------------
# the instance and the read-back
# ---------------------------------------------------------------------------------------------


def test_home_has_telemetry_off_and_keeps_a_users_settings(tmp_path: Path) -> None:
    home = instance.prepare_home(tmp_path / "home")
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nrun_monitoring: {}\n")
    instance.prepare_home(home)
    assert "run_monitoring" in (home / "dagster.yaml").read_text()


def test_open_instance_restores_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "/elsewhere")
    home = instance.prepare_home(tmp_path / "home")
    with instance.open_instance(home) as opened:
        assert os.environ["DAGSTER_HOME"] == str(home)
        assert Path(opened.root_directory) == home
        assert not opened.telemetry_enabled
    assert os.environ["DAGSTER_HOME"] == "/elsewhere"


def test_home_in_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ConfigError, match="cannot create DAGSTER_HOME"):
        instance.prepare_home(tmp_path / "taken" / "home")


def _error(cls_name: str, message: str, cause: Any = None) -> Any:
    return SimpleNamespace(cls_name=cls_name, message=message, cause=cause)


def test_step_errors_are_the_users_own_in_one_line() -> None:
    inner = _error("DataError", "mlopsbench.errors.DataError: corrupt digits file: bad header\n")
    wrapped = _error(
        "DagsterExecutionStepExecutionError",
        'dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "digits_data":\n',
        inner,
    )
    found = readback._error(SimpleNamespace(error=wrapped, user_failure_data=None))
    assert found == {"type": "DataError", "message": "corrupt digits file: bad header"}
    failure = SimpleNamespace(description="not promoted:\n accuracy 0.5")
    found = readback._error(SimpleNamespace(error=None, user_failure_data=failure))
    assert found == {"type": "Failure", "message": "not promoted: accuracy 0.5"}


def _back(**changes: Any) -> readback.RunBack:
    back = readback.RunBack(
        run_id="0123456789",
        job_name="digits_pipeline",
        status="FAILURE",
        run_config={},
        started=100.0,
        finished=108.0,
        materialised={"digits_data": {"seconds": 1.0}, "digits_model": {"seconds": 3.0}},
        steps={
            "digits_data": readback.StepTimes("digits_data", "SUCCESS", 100.5, 101.75),
            "digits_model": readback.StepTimes("digits_model", "SUCCESS", 102.0, 105.5),
        },
    )
    return dataclasses.replace(back, **changes)


def test_a_gate_failure_is_told_apart_from_a_failed_step() -> None:
    check = {"passed": False, "severity": "ERROR", "step": "digits_evaluation_digits_quality_gate"}
    failures = {check["step"]: {"type": readback.CHECK_FAILED_ERROR, "message": "1 blocking"}}
    assert _back(checks={"digits_quality_gate": check}, failures=failures).failed_only_at_the_gate(
        "digits"
    )
    crashed = {"digits_model": {"type": "RuntimeError", "message": "boom"}}
    back = _back(checks={"digits_quality_gate": check}, failures={**failures, **crashed})
    assert not back.failed_only_at_the_gate("digits")
    assert not _back(failures=crashed).failed_only_at_the_gate("digits")
    assert _back(failures=crashed).failure_message() == (
        "dagster run 01234567 of digits_pipeline failed in step digits_model: RuntimeError: boom"
    )


def test_overhead_from_step_statistics() -> None:
    parts = readback.overhead_breakdown(_back(), "digits", called=100.0, returned=106.0)
    assert parts == pytest.approx(
        {"launch_s": 0.5, "in_steps_s": 0.25 + 0.5, "between_steps_s": 0.25, "after_s": 0.5}
    )
    table = readback.step_timings(_back(), "digits")
    assert table["digits_model"] == {
        "status": "SUCCESS",
        "seconds": 3.5,
        "core_seconds": 3.0,
        "overhead_s": 0.5,
    }


def test_timings_come_from_the_materialisation_metadata() -> None:
    done = launch.Materialised("0123456789", 100.0, 106.0, seconds=6.0)
    timings = adapter._timings(get_usecase("digits"), _back(), done)
    assert timings == pytest.approx({"data": 1.0, "train": 3.0, "dagster_overhead": 2.0})


def test_evidence_of_a_run_without_home(tmp_path: Path) -> None:
    result = RunResult(
        tool="dagster",
        usecase="digits",
        model="simple",
        params={},
        tool_info={"run_id": "x", "dagster_home": str(tmp_path / "none")},
    )
    found = adapter.evidence(result)
    assert set(found) == set(EVIDENCE_KEYS) and not any(found.values())


def test_evidence_of_a_run_the_instance_does_not_hold(tmp_path: Path) -> None:
    home = instance.prepare_home(tmp_path / "home")
    result = RunResult(
        tool="dagster",
        usecase="digits",
        model="simple",
        params={},
        tool_info={"run_id": "not-a-run", "dagster_home": str(home)},
    )
    assert adapter.evidence(result) == dict.fromkeys(EVIDENCE_KEYS, False)


def test_declaration() -> None:
    tool = get_tool("dagster")
    assert tool.distributions == ("dagster", "dagster-webserver")
    assert tool.pipeline_folder == Path(adapter.__file__).parent / "pipeline"
    assert tool.probe() is not None and tool.import_commands() is not None
    lock = (tool.folder / "requirements.lock").read_text()
    versions = dict(re.findall(r"^(dagster(?:-webserver)?)==(\S+)$", lock, re.M))
    assert versions["dagster"] == versions["dagster-webserver"]  # released together
    json.dumps(tool.facts())
