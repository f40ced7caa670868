"""The pipeline files, without running them: parameters generated from the core config (and
validated by ZenML), the steps each pipeline composes, nothing of the harness in them."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.tools.zenml.pipeline.pipeline_helpers import config_from_argv, config_parameters
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import all_usecases, get_usecase
from mlopsbench.usecases.sentiment.config import SentimentConfig

PIPELINE_DIR = Path(__file__).resolve().parents[3] / "src/mlopsbench/tools/zenml/pipeline"
HARNESS = re.compile(r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter")
STEPS = ["load_data", "{model}", "evaluate_model", "promote_if_accurate"]
MODEL_STEPS = {"digits": "train_model", "sentiment": "load_model"}


def _pipeline(usecase: str) -> Any:
    module = importlib.import_module(f"mlopsbench.tools.zenml.pipeline.{usecase}_pipeline")
    return getattr(module, f"{usecase}_pipeline")


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


@pytest.mark.parametrize("usecase", [case.name for case in all_usecases()])
def test_pipeline_parameters_are_the_config_settings(usecase: str) -> None:
    """ZenML reads the parameters from the entrypoint's signature: every setting of the core
    config with its type (optional: ``| None``) and default, then the tool's own."""
    case = get_usecase(usecase)
    signature = inspect.signature(_pipeline(usecase).entrypoint)
    parameters = list(signature.parameters.values())
    assert [p.name for p in parameters] == [spec.name for spec in case.params()] + ["mlflow_uri"]
    for spec, parameter in zip(case.params(), parameters, strict=False):
        assert parameter.default == spec.default, spec.name
        assert parameter.annotation == (spec.kind | None if spec.optional else spec.kind)


def test_a_core_default_reaches_the_pipeline_with_no_other_edit() -> None:
    """The same decorator the pipelines use, over a config whose source says epochs = 7."""
    patched = _with_default(DigitsConfig, "epochs", 7)

    @config_parameters(patched)
    def pipeline(cfg: Any, mlflow_uri: str = "") -> Any:
        return cfg, mlflow_uri

    assert inspect.signature(pipeline).parameters["epochs"].default == 7
    cfg, uri = pipeline(model="simple")
    assert (cfg.epochs, cfg.model, uri) == (7, "simple", "")


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_the_pipeline_composes_one_step_per_stage_and_the_gate(usecase: str) -> None:
    pipeline = _pipeline(usecase)
    pipeline.prepare()
    expected = [s.format(model=MODEL_STEPS[usecase]) for s in STEPS]
    assert list(pipeline.invocations) == expected
    pipeline.prepare(mlflow_uri="sqlite:///mlflow.db")  # the MLflow step only when asked
    assert list(pipeline.invocations) == [*expected, "log_to_mlflow"]


@pytest.mark.capability("zenml", "typed_parameters")
def test_zenml_validates_the_values_and_the_config_checks_them() -> None:
    pipeline = _pipeline("digits")
    with pytest.raises(ValueError, match="Invalid or missing pipeline"):
        pipeline.prepare(epochs="five")  # pydantic, from the generated signature
    with pytest.raises(ConfigError, match="unknown model"):
        pipeline.prepare(model="resnet")  # the core config's own validation
    pipeline.prepare(model="simple", data_limit_train=100)
    given = pipeline.invocations["train_model"].parameters["cfg"]
    assert given == DigitsConfig(model="simple", data=DigitsDataConfig(limit_train=100))


def test_every_step_receives_the_config_the_parameters_define() -> None:
    pipeline = _pipeline("sentiment")
    pipeline.prepare(smoke=True, sample_size=20)
    given = pipeline.invocations["load_data"].parameters["cfg"]
    assert given == SentimentConfig(smoke=True, sample_size=20)


def test_config_from_argv_types_each_setting_like_its_field() -> None:
    cfg = config_from_argv(DigitsConfig, ["model=simple", "epochs=2", "data_limit_train=100"])
    assert (cfg.model, cfg.epochs, cfg.data.limit_train) == ("simple", 2, 100)
    with pytest.raises(ConfigError, match="unknown config key"):
        config_from_argv(DigitsConfig, ["epoch=2"])


def test_pipeline_files_hold_no_harness_plumbing() -> None:
    files = sorted(PIPELINE_DIR.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        found = HARNESS.findall(path.read_text())
        assert not found, f"{path.name}: {found}"


def test_instrumentation_is_counted_over_the_pipeline_folder() -> None:
    from mlopsbench.bench.instrumentation import count_tool
    from mlopsbench.toolkit.registry import get_tool

    counted = count_tool(get_tool("zenml")).to_dict()
    assert len(counted["files"]) == len(list(PIPELINE_DIR.glob("*.py")))
    assert not counted["missing"] and counted["tool_lines"] > 0
    assert {"zenml.pipeline", "zenml.step", "zenml.Model", "zenml.log_metadata"} <= set(
        counted["api"]
    )


def test_a_checkpoint_of_symlinks_is_kept_with_its_files(tmp_path: Path) -> None:
    """A Hugging Face cache snapshot links into blobs/: the artifact must hold the files."""
    from mlopsbench.tools.zenml.pipeline.pipeline_helpers import self_contained

    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    (blobs / "1234").write_text("{}")
    (snapshot / "config.json").symlink_to(blobs / "1234")
    kept = self_contained(snapshot, tmp_path / "step")
    assert kept == tmp_path / "step" / "abc"
    assert (kept / "config.json").read_text() == "{}" and not (kept / "config.json").is_symlink()
    plain = tmp_path / "model"
    plain.mkdir()
    (plain / "model.safetensors").write_bytes(b"0")
    assert self_contained(plain, tmp_path / "step") == plain  # plain files: kept where they are
