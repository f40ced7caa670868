"""The compiled KFP IR: DAG, typed inputs/outputs, retry policy and the quality-gate condition.

No test folder here is a package (an ``__init__.py`` in ``tests/tools/kfp`` would shadow the
real ``kfp`` package), hence the ``test_kfp_*`` file names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.tools.kfp.params import KfpSettings, pipeline_arguments
from mlopsbench.tools.kfp.pipelines import TRAIN_RETRIES, compile_pipeline
from mlopsbench.usecases.digits.config import DigitsConfig

IMAGE = "registry.example/mlopsbench:test"


@pytest.fixture(scope="module")
def digits_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = compile_pipeline(
        "digits", KfpSettings(image=IMAGE), tmp_path_factory.mktemp("ir") / "d.yaml"
    )
    return yaml.safe_load(path.read_text())


def _tasks(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["root"]["dag"]["tasks"]


def _component(spec: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    return spec["components"][task["componentRef"]["name"]]


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


def test_pipeline_inputs_cover_every_config_field(digits_spec: dict) -> None:
    inputs = digits_spec["root"]["inputDefinitions"]["parameters"]
    args = pipeline_arguments("digits", DigitsConfig())
    assert set(args) | {"mlflow_uri", "run_name"} == set(inputs)
    # Defaults of the compiled pipeline are the core config's defaults.
    for key, value in args.items():
        assert inputs[key]["defaultValue"] == value, key
    assert inputs["epochs"]["parameterType"] == "NUMBER_INTEGER"
    assert inputs["lr"]["parameterType"] == "NUMBER_DOUBLE"


def test_executors_use_the_configured_image_without_pip_installing_kfp(digits_spec: dict) -> None:
    executors = digits_spec["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == IMAGE
        assert "pip install" not in " ".join(container["command"])
        source = container["command"][-1]
        assert "from mlopsbench" in source  # the component body calls the installed core


def test_compiled_yaml_loads_back_as_a_component(digits_spec: dict, tmp_path: Path) -> None:
    from kfp import components

    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(digits_spec))
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "mlopsbench-digits"
    assert {"model", "epochs", "threshold", "data_source"} <= set(loaded.component_spec.inputs)


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


@pytest.fixture(scope="module")
def sentiment_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = compile_pipeline(
        "sentiment", KfpSettings(image=IMAGE), tmp_path_factory.mktemp("ir") / "s.yaml"
    )
    return yaml.safe_load(path.read_text())


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


def test_every_sentiment_step_takes_the_whole_config(sentiment_spec: dict) -> None:
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    fields = set(SentimentConfig.__dataclass_fields__)
    inputs = sentiment_spec["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == fields | {"mlflow_uri", "run_name"}
    args = pipeline_arguments("sentiment", SentimentConfig())
    for key, value in args.items():
        if key != "source":  # "" in the pipeline = the config's own choice (fixture/hf)
            assert inputs[key]["defaultValue"] == value, key
    assert inputs["source"]["defaultValue"] == ""
    tasks = _tasks(sentiment_spec)
    for task in ("prepare-sentiment-data", "prepare-sentiment-model", "evaluate-sentiment"):
        params = _component(sentiment_spec, tasks[task])["inputDefinitions"]["parameters"]
        assert set(params) == fields, task
