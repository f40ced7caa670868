"""The pipeline's helpers and the adapter's settings, without running a pipeline."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.kfp.build import DEFAULT_IMAGE, IMAGE_ENV, KfpSettings, pipeline_arguments
from mlopsbench.tools.kfp.pipeline import component_helpers as helpers
from mlopsbench.tools.kfp.pipeline.pipeline_helpers import config_parameters
from mlopsbench.tools.kfp.pipeline.promote import PROMOTION_FILE, record_promotion
from mlopsbench.usecases.common.params import setting
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

# What pipeline/ must not contain: it is what a KFP user writes, with no harness in it.
HARNESS = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter|time\.time\("
    r"|FAIL_STEP|\bstamp\b|\bentered\b"
)


def _as_kfp_delivers(values: dict[str, Any]) -> dict[str, str]:
    """A dict input's values as kfp.local hands them to a component: text, numbers as doubles."""
    text = {bool: lambda v: str(v).lower(), int: lambda v: str(float(v))}
    return {k: text.get(type(v), str)(v) for k, v in values.items()}


@pytest.mark.parametrize(
    "cfg",
    [
        DigitsConfig(),
        DigitsConfig(
            model="simple",
            epochs=2,
            data=DigitsDataConfig(source="npz", path="/d.npz", limit_train=64),
        ),
        SentimentConfig(smoke=True, sample_size=20, fine_tune_lr=1e-4),
        SentimentConfig(),
    ],
)
def test_settings_round_trip_from_harness_to_component(cfg: Any) -> None:
    args = pipeline_arguments(cfg)
    assert all(v is not None for v in args.values())  # KFP has no None
    assert helpers.config_from_settings(type(cfg), args) == cfg
    assert helpers.config_from_settings(type(cfg), _as_kfp_delivers(args)) == cfg


def test_component_side_config_validates() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        helpers.config_from_settings(DigitsConfig, {"model": "resnet"})
    with pytest.raises(ConfigError, match="unknown DigitsConfig settings: smoke"):
        helpers.config_from_settings(DigitsConfig, {"smoke": "true"})


@dataclasses.dataclass(frozen=True)
class _Toy:
    name: str = setting("a", "The name.", choices=("a", "b"))
    count: int | None = setting(None, "How many (all when unset).")
    ratio: float = setting(0.5, "How much.")


def test_config_parameters_make_the_config_the_pipeline_signature() -> None:
    seen: list[tuple[dict[str, Any], str]] = []

    @config_parameters(_Toy)
    def pipeline(settings: dict, extra: str = "x") -> None:
        """Do it.

        Args:
            extra: Its own parameter.
        """
        seen.append((settings, extra))

    params = inspect.signature(pipeline).parameters
    assert [(p.name, p.annotation, p.default) for p in params.values()] == [
        ("name", str, "a"),
        ("count", int, 0),  # KFP has no None: the unset value
        ("ratio", float, 0.5),
        ("extra", str, "x"),
    ]
    doc = inspect.getdoc(pipeline) or ""
    assert "    name: The name. One of: a, b." in doc and "    extra: Its own parameter." in doc
    assert "count: How many (all when unset). 0 leaves it unset." in doc
    pipeline("b", 3)  # KFP calls it with the inputs in order
    assert seen == [({"name": "b", "count": 3, "ratio": 0.5}, "x")]


def test_settings_image_from_env_and_validation() -> None:
    assert KfpSettings.from_env({}).image == DEFAULT_IMAGE
    image = "ghcr.io/x/mlopsbench:1"
    assert KfpSettings.from_env({IMAGE_ENV: image}).image == image
    with pytest.raises(ConfigError, match="invalid container image"):
        KfpSettings(image="bad image")


def test_stage_results_become_metadata_with_paths_relative_to_the_artifact(
    tmp_path: Path,
) -> None:
    returned = {
        "model_dir": str(tmp_path / "model"),
        "history_path": str(tmp_path / "history.json"),
        "elsewhere": "/opt/cache/snapshot",
        "history": [{"epoch": 1}],
        "artifacts": {"tsne": str(tmp_path / "tsne.png")},
        "seconds": 1.5,
        "history_none": None,
    }
    assert helpers.describe(returned, tmp_path) == {
        "model_dir": "model",
        "history_path": "history.json",
        "elsewhere": "/opt/cache/snapshot",  # outside the artifact: as it was
        "artifacts": {"tsne": "tsne.png"},
        "seconds": 1.5,
        "history_none": None,
    }
    artifact = SimpleNamespace(name="model", path=str(tmp_path), metadata={"model_dir": "model"})
    assert helpers.file_in(artifact, "model_dir") == str(tmp_path / "model")
    assert helpers.optional_file_in(artifact, "history_path") is None
    with pytest.raises(ValueError, match="'model' records no 'history_path'"):
        helpers.file_in(artifact, "history_path")


def test_history_metrics_are_flat_per_epoch_scalars() -> None:
    history = [
        {"epoch": 1, "train_loss": 0.9, "test_accuracy": 0.7},
        {"epoch": 2, "train_loss": 0.5, "test_accuracy": 0.8},
    ]
    assert helpers.history_metrics(history) == {
        "epoch1_train_loss": 0.9,
        "epoch1_test_accuracy": 0.7,
        "epoch2_train_loss": 0.5,
        "epoch2_test_accuracy": 0.8,
    }


def test_report_inlines_images_and_escapes(tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    png.write_bytes(b"\x89PNG fake")
    gate = {"metric": "accuracy", "value": 0.5, "threshold": 0.9, "passed": False}
    path = helpers.write_report(
        tmp_path / "out" / "report", "<digits>", {"accuracy": 0.5}, gate, {"cm": str(png)}
    )
    page = path.read_text()
    assert "&lt;digits&gt;" in page and "<digits>" not in page
    assert "data:image/png;base64," in page
    assert "Quality gate FAILED" in page


def test_outside_checkpoints_are_copied_into_the_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    inside = artifact / "model"
    inside.mkdir(parents=True)
    assert helpers.keep_in_artifact(inside, artifact) == str(inside)  # already in: kept

    hub = tmp_path / "hub" / "snapshot"
    hub.mkdir(parents=True)
    (tmp_path / "blob").write_text("weights")
    (hub / "model.safetensors").symlink_to(tmp_path / "blob")  # hub caches use symlinks
    other = tmp_path / "artifact2"
    other.mkdir()
    assert helpers.keep_in_artifact(hub, other) == str(other / "model")
    copied = other / "model" / "model.safetensors"
    assert copied.read_text() == "weights" and not copied.is_symlink()


def _promote_inputs(tmp_path: Path) -> dict[str, Any]:
    """Input artifacts as KFP hands them to promote-model (paths relative in metadata)."""
    data = tmp_path / "dataset"
    data.mkdir()
    model = tmp_path / "model"
    (model / "model").mkdir(parents=True)
    (model / "history.json").write_text(json.dumps([{"epoch": 1, "train_loss": 1.0}]))
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text("{}")
    return {
        "usecase": "digits",
        "run_name": "r1",
        "dataset": SimpleNamespace(
            path=str(data),
            metadata={"source": "sklearn:load_digits", "digest": "abc", "data_path": "data.npz"}
            | {"seconds": 0.1},
        ),
        "model": SimpleNamespace(
            uri=str(model),
            path=str(model),
            metadata={
                "model_dir": "model",
                "history_path": "history.json",
                "params": {"epochs": 1},
            },
        ),
        "metrics": SimpleNamespace(metadata={"accuracy": 0.93}),
        "evaluation": SimpleNamespace(
            path=str(evaluation), metadata={"artifacts": {"metrics": "metrics.json"}}
        ),
        "out_dir": str(tmp_path / "promotion"),
    }


def test_promote_writes_a_record_without_mlflow(tmp_path: Path) -> None:
    record = record_promotion(mlflow_uri="", **_promote_inputs(tmp_path))
    saved = json.loads((tmp_path / "promotion" / PROMOTION_FILE).read_text())
    assert saved == record
    assert record["mlflow"] is None
    assert record["metrics"] == {"accuracy": 0.93}
    assert record["dataset"] == {"source": "sklearn:load_digits", "digest": "abc"}
    assert record["model_dir"] == str(tmp_path / "model" / "model")


def test_promote_logs_through_the_shared_tracking_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlopsbench.tracking

    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_log(uri: str, **kwargs: Any) -> dict[str, str]:
        calls.append((uri, kwargs))
        return {"run_id": "r-1", "experiment_id": "1", "model_uri": "models:/m-1"}

    monkeypatch.setattr(mlopsbench.tracking, "log_run_to_mlflow", fake_log)
    record = record_promotion(mlflow_uri="sqlite:///x.db", **_promote_inputs(tmp_path))
    assert record["mlflow"]["run_id"] == "r-1"
    ((uri, kwargs),) = calls
    assert uri == "sqlite:///x.db"
    assert kwargs["tool"] == "kfp" and kwargs["usecase"] == "digits"
    assert kwargs["history"] == [{"epoch": 1, "train_loss": 1.0}]
    assert kwargs["model_dir"] == str(tmp_path / "model" / "model")
    assert set(kwargs["artifacts"]) == {"metrics.json"}
    assert kwargs["dataset"]["data_path"] == str(tmp_path / "dataset" / "data.npz")
    assert "seconds" not in kwargs["dataset"]
    assert kwargs["params"] == {"epochs": 1}


def test_pipeline_folder_holds_no_harness_plumbing() -> None:
    files = get_tool("kfp").pipeline_files()
    names = {f.name for f in files}
    assert {"digits_pipeline.py", "sentiment_pipeline.py", "promote.py"} <= names
    found = [
        f"{f.name}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text().splitlines(), start=1)
        if HARNESS.search(line)
    ]
    assert found == []
