"""Fast checks of the Prefect pipeline's parameters, the adapter's record and its environment:
no flow run and no Prefect API is started here."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlopsbench.result import EVIDENCE_KEYS, RunResult
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.prefect import adapter, environment, launch
from mlopsbench.tools.prefect.environment import RunLayout
from mlopsbench.tools.prefect.pipeline import reports
from mlopsbench.tools.prefect.pipeline.settings import settings_model
from mlopsbench.tools.prefect.readback import FlowRunRecord
from mlopsbench.usecases.common.params import config_params, flat_values
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import all_usecases
from mlopsbench.usecases.sentiment.config import SentimentConfig

HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter|time\.time"
)
CONFIGS = [
    DigitsConfig(model="deep", epochs=2, data=DigitsDataConfig(limit_train=100)),
    SentimentConfig(smoke=True, sample_size=40, fine_tune_epochs=3),
]


def _flow(usecase: str) -> Any:
    from mlopsbench.tools.prefect.worker import find_flow, flow_module

    return find_flow(flow_module(usecase))


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
    patched.__module__ = config_class.__module__
    return patched


# ---------------------------------------------------------------------------------------------
# the pipeline folder
# ---------------------------------------------------------------------------------------------


def test_pipeline_holds_no_harness_plumbing() -> None:
    """pipeline/ is what a Prefect user copies: no timing, no fault injection, no bookkeeping."""
    files = get_tool("prefect").pipeline_files()
    assert {p.name for p in files} >= {"digits_flow.py", "sentiment_flow.py"}
    for path in files:
        found = HARNESS_PLUMBING.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_every_use_case_has_its_flow(usecase: str) -> None:
    assert launch.flow_file(usecase) == get_tool("prefect").pipeline_folder / f"{usecase}_flow.py"
    flow = _flow(usecase)
    assert flow.name == usecase
    # Results persist (what the adapter reads back), as JSON, readable without the flow's code.
    assert flow.persist_result is True and flow.result_serializer == "json"


def test_a_use_case_without_a_flow_is_one_line() -> None:
    from mlopsbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no Prefect flow for the weather use case"):
        launch.flow_file("weather")


def test_the_training_task_retries_except_on_bad_input() -> None:
    from mlopsbench.tools.prefect.pipeline import digits_flow, sentiment_flow
    from mlopsbench.tools.prefect.pipeline.shared_tasks import retry_unless_bad_input

    for module in (digits_flow, sentiment_flow):
        task = module.build_model
        assert task.retries == 2 and task.retry_delay_seconds == 5, module.__name__
        assert task.retry_condition_fn is retry_unless_bad_input
    assert digits_flow.prepare_data.retries == 0  # bad local data will not get better


# ---------------------------------------------------------------------------------------------
# parameters from the core config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", CONFIGS, ids=["digits", "sentiment"])
def test_adapter_values_are_exactly_the_flow_parameters(cfg: Any, tmp_path: Path) -> None:
    """What the adapter passes is what the flow declares; every core setting is a field of its
    ``config`` parameter, and Prefect validates it back to the same config."""
    usecase = "digits" if isinstance(cfg, DigitsConfig) else "sentiment"
    flow = _flow(usecase)
    values = launch.flow_parameters(cfg, RunLayout(tmp_path), "sqlite:///x.db")
    assert set(values) == set(flow.parameters.properties)
    settings_class = flow.parameters.definitions[type(cfg).__name__]
    assert list(settings_class["properties"]) == [s.name for s in config_params(type(cfg))]
    validated = flow.validate_parameters(values)
    assert validated["config"].to_config() == cfg
    assert values["mlflow_uri"] == "sqlite:///x.db" and values["work_dir"].endswith("flow-runs")


def test_settings_carry_the_core_defaults_types_help_and_choices() -> None:
    schema = settings_model(DigitsConfig).model_json_schema()["properties"]
    for spec in config_params(DigitsConfig):
        field = schema[spec.name]
        assert field["default"] == spec.default, spec.name
        assert field["description"] == spec.description, spec.name
    assert schema["model"]["enum"] == ["simple", "deep", "cnn"]
    assert schema["data_limit_train"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert settings_model(DigitsConfig)().to_config() == DigitsConfig()


def test_a_changed_core_default_reaches_the_settings() -> None:
    """Change a default in the core config only: the flow's settings model follows."""
    patched = _with_default(DigitsConfig, "epochs", 7)
    settings = settings_model(patched)
    assert settings.model_json_schema()["properties"]["epochs"]["default"] == 7
    assert settings().to_config().epochs == 7


def test_a_changed_core_default_reaches_the_flow_parameters(tmp_path: Path) -> None:
    """The same seen from Prefect: the flow's parameter schema (its UI run form) after the
    core's default changed, with no other edit."""
    script = (
        "import json\n"
        "from mlopsbench.usecases.digits.config import DigitsConfig\n"
        "DigitsConfig.__dataclass_fields__['epochs'].default = 11\n"
        "from mlopsbench.tools.prefect.pipeline.digits_flow import digits_pipeline\n"
        "print(json.dumps(digits_pipeline.parameters.model_dump()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    schema = json.loads(done.stdout.strip().splitlines()[-1])
    assert schema["properties"]["config"]["default"]["epochs"] == 11
    assert schema["definitions"]["DigitsConfig"]["properties"]["epochs"]["default"] == 11


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"model": "resnet"}, "model"),
        ({"data_source": "npz"}, "needs a path"),
        ({"epoch": 3}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_fail_validation_with_the_core_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings_model(DigitsConfig)(**values)


@pytest.mark.capability("prefect", "typed_parameters")
def test_the_sweep_flow_takes_typed_settings_and_sizes_its_task_runner(tmp_path: Path) -> None:
    """The sweep's ``config`` is validated by Prefect into the core's SweepConfig (a bad value
    fails with the core's message); ``workers`` sizes the flow's process-pool task runner."""
    from prefect.exceptions import ParameterTypeError
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    from mlopsbench.tools.prefect.worker import flow_module
    from mlopsbench.usecases.sweep.config import SweepConfig

    cfg = SweepConfig(trials=3, models="simple,deep", workers=2)
    flow = _flow("sweep")
    values = launch.flow_parameters(cfg, RunLayout(tmp_path), None)
    assert set(values) == set(flow.parameters.properties)
    assert flow.validate_parameters(values)["config"].to_config() == cfg
    with pytest.raises(ParameterTypeError, match=r"trials must be in \[1, 256\]"):
        flow.validate_parameters({"config": {"trials": 0}})
    module = flow_module("sweep")
    runner = module.with_workers(cfg.workers).task_runner
    assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 2
    assert isinstance(module.with_workers(1).task_runner, ThreadPoolTaskRunner)
    assert flow.persist_result is True and flow.result_serializer == "json"


@pytest.mark.capability("prefect", "typed_parameters")
def test_a_flow_run_with_bad_parameters_fails_before_any_task() -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="epochs must be >= 1"):
        _flow("digits").validate_parameters({"config": {"epochs": 0}})


# ---------------------------------------------------------------------------------------------
# the environment of Prefect's processes
# ---------------------------------------------------------------------------------------------


def test_each_run_has_its_own_prefect_home(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    base = {"PREFECT_API_URL": "http://elsewhere:4200/api", "MLFLOW_TRACKING_URI": "x"}
    env = environment.prefect_env(layout, None, base=base)
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect_home")
    assert env["PREFECT_LOCAL_STORAGE_PATH"] == str(tmp_path / "results")
    assert "PREFECT_API_URL" not in env and env["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "true"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == ""
    served = environment.prefect_env(layout, "http://127.0.0.1:4200/api", base=base)
    assert served["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"


def test_api_url_from_the_option_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsbench.errors import ConfigError

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert environment.api_url({}) is None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api/")
    assert environment.api_url({}) == "http://127.0.0.1:4200/api"
    assert environment.api_url({"prefect_api_url": "http://h:1/api"}) == "http://h:1/api"
    with pytest.raises(ConfigError, match="http:// or https://"):
        environment.api_url({"prefect_api_url": "127.0.0.1:4200"})


def test_the_server_finds_its_own_api_and_database(tmp_path: Path) -> None:
    from mlopsbench.tools.prefect import server

    env = server.server_env(tmp_path, "127.0.0.1", 4321, base={"PREFECT_API_URL": "x"})
    assert "PREFECT_API_URL" not in env
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].endswith(f"{tmp_path}/prefect.db")
    assert env["PREFECT_HOME"] == str(tmp_path)


# ---------------------------------------------------------------------------------------------
# the record, from a flow run as read back
# ---------------------------------------------------------------------------------------------


def _task(state: str, result: Any = None, message: str | None = None, **kw: Any) -> dict:
    return {
        "id": kw.get("id", state),
        "name": "t",
        "state_type": state,
        "message": message,
        "run_count": kw.get("run_count", 1),
        "upstream": kw.get("upstream", []),
        "result": result,
        "start_time": 0.0,
        "end_time": 1.0,
        "total_run_time_s": kw.get("seconds", 1.0),
    }


def _record(state: str, tasks: dict[str, dict], message: str | None = None, **kw: Any) -> dict:
    return {
        "flow_run": {
            "id": "0000",
            "name": "brave-otter",
            "flow_name": "digits",
            "parameters": kw.get("parameters", {}),
            "state_type": state,
            "state_name": state.title(),
            "message": message,
            "start_time": 0.0,
            "end_time": 1.0,
            "total_run_time_s": 1.0,
        },
        "task_runs": tasks,
        "artifacts": kw.get("artifacts", []),
    }


GATE = {"metric": "accuracy", "value": 0.5, "threshold": 0.9, "passed": False}


def test_a_gate_failure_is_not_a_run_failure() -> None:
    record = FlowRunRecord.from_dict(
        _record(
            "FAILED",
            {
                "evaluate_model": _task("COMPLETED", {"gate": GATE, "metrics": {}}),
                "quality_gate": _task("FAILED", message="GateFailedError: quality gate FAILED"),
            },
        )
    )
    assert adapter.failure_message(record, record.result_of("evaluate_model")) is None


def test_a_failed_task_is_one_line_naming_it() -> None:
    record = FlowRunRecord.from_dict(
        _record(
            "FAILED",
            {
                "prepare_data": _task("COMPLETED", {}),
                "build_model": _task(
                    "FAILED", message="Task run encountered an exception DataError:\nbad npz"
                ),
            },
        )
    )
    assert adapter.failure_message(record, {}) == (
        "prefect flow run brave-otter in task build_model failed: "
        "Task run encountered an exception DataError: bad npz"
    )


def test_evidence_checks_what_prefect_stored(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    config = flat_values(DigitsConfig(epochs=1))
    history = [{"epoch": 1, "train_loss": 0.5}]
    record = FlowRunRecord.from_dict(
        _record(
            "COMPLETED",
            {
                "prepare_data": _task("COMPLETED", {"source": "sklearn", "digest": "ab"}),
                "build_model": _task("COMPLETED", {"model_dir": str(model_dir)}),
                "evaluate_model": _task(
                    "COMPLETED",
                    {"metrics": {"accuracy": 0.9}},
                    upstream=["build_model", "prepare_data"],
                ),
            },
            parameters={"config": config},
            artifacts=[
                {"type": "table", "task": "build_model", "data": history},
                {"type": "markdown", "task": "evaluate_model", "data": "# report"},
                {"type": "image", "task": "evaluate_model", "png": True, "bytes": 10},
            ],
        )
    )
    result = RunResult(tool="prefect", usecase="digits", model="cnn", params=config)
    result.history = history
    assert adapter.recorded_evidence(record, result) == dict.fromkeys(EVIDENCE_KEYS, True)
    result.status = "gate_failed"  # a gate failure must show as a failed flow run
    assert adapter.recorded_evidence(record, result)["run_state"] is False
    assert adapter.evidence(RunResult("prefect", "digits", "cnn", {})) == dict.fromkeys(
        EVIDENCE_KEYS, False
    )


# ---------------------------------------------------------------------------------------------
# the artifacts' helpers
# ---------------------------------------------------------------------------------------------


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert reports.artifact_key("sentiment", "local:My_Model.v2") == "sentiment-local-my-model-v2"
    assert reports.artifact_key("digits", "cnn", "history") == "digits-cnn-history"


def test_image_artifacts_are_data_urls(tmp_path: Path) -> None:
    from mlopsbench.tools.prefect.readback import PNG_MAGIC, _artifact_data

    png = tmp_path / "plot.png"
    png.write_bytes(PNG_MAGIC + b"rest")
    url = reports._data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert _artifact_data("image", url) == {"bytes": len(PNG_MAGIC) + 4, "png": True}
    assert _artifact_data("image", "https://example.org/x.png") == {"bytes": 0, "png": False}
