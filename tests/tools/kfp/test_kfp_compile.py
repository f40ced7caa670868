"""The compiled KFP IR: DAG, typed inputs/outputs, retry policy and the quality-gate condition.

No test folder here is a package (an ``__init__.py`` in ``tests/tools/kfp`` would shadow the
real ``kfp`` package), hence the ``test_kfp_*`` file names.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.tools.kfp.build import KfpSettings, compile_pipeline, pipeline_arguments
from mlopsbench.tools.kfp.pipeline.pipeline_helpers import TRAIN_RETRIES
from mlopsbench.usecases.common.params import config_params
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

IMAGE = "registry.example/mlopsbench:test"
KFP_TYPES = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}
TOOL_INPUTS = {"mlflow_uri", "run_name"}  # the pipeline's own parameters, beside the config's


def _compile(usecase: str, folder: Path) -> dict[str, Any]:
    path = compile_pipeline(usecase, KfpSettings(image=IMAGE), folder / f"{usecase}.yaml")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def digits_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _compile("digits", tmp_path_factory.mktemp("ir"))


@pytest.fixture(scope="module")
def sentiment_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _compile("sentiment", tmp_path_factory.mktemp("ir"))


def _tasks(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["root"]["dag"]["tasks"]


def _component(spec: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    return spec["components"][task["componentRef"]["name"]]


def _inputs(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["root"]["inputDefinitions"]["parameters"]


def test_dag_wires_prepare_train_evaluate_and_a_gated_promote(digits_spec: dict) -> None:
    tasks = _tasks(digits_spec)
    assert set(tasks) == {"prepare-digits-data", "train-digits", "evaluate-digits", "condition-1"}
    assert tasks["train-digits"]["dependentTasks"] == ["prepare-digits-data"]
    assert set(tasks["evaluate-digits"]["dependentTasks"]) == {
        "prepare-digits-data",
        "train-digits",
    }
    # The model reaches evaluate as an artifact produced by train.
    model_in = tasks["evaluate-digits"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model_in == {"outputArtifactKey": "model", "producerTask": "train-digits"}

    gate = tasks["condition-1"]
    condition = gate["triggerPolicy"]["condition"]
    assert "pipelinechannel--evaluate-digits-Output" in condition
    assert ">= inputs.parameter_values['pipelinechannel--threshold']" in condition
    inner = _component(digits_spec, gate)["dag"]["tasks"]
    assert set(inner) == {"promote-model"}
    assert inner["promote-model"]["cachingOptions"] == {}  # caching off: always re-log


def test_training_has_a_retry_policy(digits_spec: dict) -> None:
    policy = _tasks(digits_spec)["train-digits"]["retryPolicy"]
    assert policy["maxRetryCount"] == TRAIN_RETRIES
    assert policy["backoffDuration"] == "10s"


def test_outputs_are_typed_artifacts(digits_spec: dict) -> None:
    tasks = _tasks(digits_spec)

    def outputs(task: str) -> dict[str, str]:
        defs = _component(digits_spec, tasks[task])["outputDefinitions"]
        return {k: v["artifactType"]["schemaTitle"] for k, v in defs["artifacts"].items()}

    assert outputs("prepare-digits-data") == {"dataset": "system.Dataset"}
    assert outputs("train-digits") == {"model": "system.Model", "history": "system.Metrics"}
    assert outputs("evaluate-digits") == {
        "metrics": "system.Metrics",
        "confusion": "system.ClassificationMetrics",
        "evaluation": "system.Artifact",
        "report": "system.HTML",
    }
    evaluate_params = _component(digits_spec, tasks["evaluate-digits"])["outputDefinitions"]
    assert evaluate_params["parameters"] == {"Output": {"parameterType": "NUMBER_DOUBLE"}}


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_pipeline_inputs_are_the_config_settings(
    usecase: str, digits_spec: dict, sentiment_spec: dict
) -> None:
    """Names, types, defaults and help text of the pipeline's inputs: the core config's."""
    spec = {"digits": digits_spec, "sentiment": sentiment_spec}[usecase]
    config_class = {"digits": DigitsConfig, "sentiment": SentimentConfig}[usecase]
    inputs = _inputs(spec)
    settings = config_params(config_class)
    assert set(inputs) == {s.name for s in settings} | TOOL_INPUTS
    for setting in settings:
        declared = inputs[setting.name]
        assert declared["parameterType"] == KFP_TYPES[setting.kind], setting.name
        # KFP has no None: an optional setting defaults to its unset value ("" or 0).
        assert declared["defaultValue"] == setting.tool_default, setting.name
        assert " ".join(declared["description"].split()).startswith(
            " ".join(setting.help.split())
        ), setting.name
    # What the harness passes for the default config is a valid argument set.
    args = pipeline_arguments(config_class())
    assert set(args) == {s.name for s in settings}


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_every_step_takes_the_settings_as_one_typed_dict(
    usecase: str, digits_spec: dict, sentiment_spec: dict
) -> None:
    spec = {"digits": digits_spec, "sentiment": sentiment_spec}[usecase]
    config_class = {"digits": DigitsConfig, "sentiment": SentimentConfig}[usecase]
    names = {s.name for s in config_params(config_class)}
    steps = {name: task for name, task in _tasks(spec).items() if "condition" not in name}
    assert len(steps) == 3
    for name, task in steps.items():
        params = _component(spec, task)["inputDefinitions"]["parameters"]
        assert params == {"settings": {"parameterType": "STRUCT"}}, name
        # The dict holds every setting, each fed by the pipeline input of the same name.
        given = task["inputs"]["parameters"]
        assert set(given["settings"]["runtimeValue"]["constant"]) == names, name
        fed = {k: v["componentInputParameter"] for k, v in given.items() if k != "settings"}
        assert fed == {f"pipelinechannel--{n}": n for n in names}, name


def test_a_changed_core_default_reaches_the_compiled_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults live in the core config only: change one there, nothing else, and the
    compiled pipeline and the harness's arguments follow."""
    monkeypatch.setattr(DigitsConfig.__dataclass_fields__["epochs"], "default", 7)
    init = DigitsConfig.__init__
    names = list(inspect.signature(init).parameters)[1:]
    defaults = list(init.__defaults__ or ())
    defaults[names.index("epochs")] = 7
    monkeypatch.setattr(init, "__defaults__", tuple(defaults))

    inputs = _inputs(_compile("digits", tmp_path))
    assert inputs["epochs"]["defaultValue"] == 7
    assert pipeline_arguments(DigitsConfig())["epochs"] == 7


def test_executors_use_the_configured_image_without_pip_installing_kfp(digits_spec: dict) -> None:
    executors = digits_spec["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == IMAGE
        assert "pip install" not in " ".join(container["command"])
        source = container["command"][-1]
        assert "from mlopsbench" in source  # the component body calls the installed core


@pytest.mark.capability("kfp", "cluster_export")
@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_compiled_yaml_loads_back_with_kfp(
    usecase: str, digits_spec: dict, sentiment_spec: dict, tmp_path: Path
) -> None:
    from kfp import compiler, components

    spec = {"digits": digits_spec, "sentiment": sentiment_spec}[usecase]
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == f"mlopsbench-{usecase}"
    config_class = {"digits": DigitsConfig, "sentiment": SentimentConfig}[usecase]
    for setting in config_params(config_class):
        assert loaded.component_spec.inputs[setting.name].default == setting.tool_default
    # ...and compiles again (the loaded pipeline is a component KFP can compile).
    compiler.Compiler().compile(loaded, package_path=str(tmp_path / "round-trip.yaml"))
    again = yaml.safe_load((tmp_path / "round-trip.yaml").read_text())
    assert set(_inputs(again)) == set(_inputs(spec))


def test_cli_compile_writes_yaml_and_reports_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["kfp", "compile", "--out", str(tmp_path), "-u", "digits", "--image", IMAGE]
    )
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((tmp_path / "digits_pipeline.yaml").read_text())
    assert spec["pipelineInfo"]["name"] == "mlopsbench-digits"

    bad = runner.invoke(app, ["kfp", "compile", "--out", str(tmp_path), "-u", "mnist"])
    assert bad.exit_code == 2
    assert "unknown use case 'mnist'" in bad.output
    assert "Traceback" not in bad.output

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    bad_out = runner.invoke(app, ["kfp", "compile", "--out", str(blocked / "sub"), "-u", "digits"])
    assert bad_out.exit_code == 2
    assert "cannot create" in bad_out.output


def test_sentiment_dag_gate_and_retry(sentiment_spec: dict) -> None:
    tasks = _tasks(sentiment_spec)
    assert set(tasks) == {
        "prepare-sentiment-data",
        "prepare-sentiment-model",
        "evaluate-sentiment",
        "condition-1",
    }
    # Data and model do not depend on each other: a cluster runs them in parallel.
    assert "dependentTasks" not in tasks["prepare-sentiment-model"]
    assert set(tasks["evaluate-sentiment"]["dependentTasks"]) == {
        "prepare-sentiment-data",
        "prepare-sentiment-model",
    }
    assert tasks["prepare-sentiment-model"]["retryPolicy"]["maxRetryCount"] == TRAIN_RETRIES
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert "pipelinechannel--evaluate-sentiment-Output" in condition
    assert set(_component(sentiment_spec, tasks["condition-1"])["dag"]["tasks"]) == {
        "promote-model"
    }
