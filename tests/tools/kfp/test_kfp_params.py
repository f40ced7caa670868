"""Parameters, settings and the in-component helpers (no pipeline run)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.tools.kfp import inside
from mlopsbench.tools.kfp.params import (
    DEFAULT_IMAGE,
    IMAGE_ENV,
    KfpSettings,
    digits_config,
    pipeline_arguments,
)
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


def test_digits_arguments_round_trip_with_none_sentinels() -> None:
    cfg = DigitsConfig(
        model="simple", epochs=2, data=DigitsDataConfig(source="npz", path="/d.npz", limit_train=64)
    )
    args = pipeline_arguments("digits", cfg)
    assert args["data_path"] == "/d.npz" and args["data_limit_train"] == 64
    assert digits_config(**args) == cfg

    defaults = pipeline_arguments("digits", DigitsConfig())
    assert defaults["data_path"] == "" and defaults["data_limit_train"] == 0  # KFP has no None
    assert all(v is not None for v in defaults.values())
    assert digits_config(**defaults) == DigitsConfig()


def test_component_side_config_validates() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        digits_config(model="resnet")
    with pytest.raises(ConfigError, match="unknown use case"):
        pipeline_arguments("mnist", DigitsConfig())


def test_settings_image_from_env_and_validation() -> None:
    assert KfpSettings.from_env({}).image == DEFAULT_IMAGE
    assert (
        KfpSettings.from_env({IMAGE_ENV: "ghcr.io/x/mlopsbench:1"}).image
        == "ghcr.io/x/mlopsbench:1"
    )
    with pytest.raises(ConfigError, match="invalid container image"):
        KfpSettings(image="bad image")


def test_history_metrics_are_flat_per_epoch_scalars() -> None:
    history = [
        {"epoch": 1, "train_loss": 0.9, "test_accuracy": 0.7},
        {"epoch": 2, "train_loss": 0.5, "test_accuracy": 0.8},
    ]
    flat = inside.history_metrics(history)
    assert flat == {
        "epoch1_train_loss": 0.9,
        "epoch1_test_accuracy": 0.7,
        "epoch2_train_loss": 0.5,
        "epoch2_test_accuracy": 0.8,
    }


def test_report_inlines_images_and_escapes(tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    png.write_bytes(b"\x89PNG fake")
    gate = {"metric": "accuracy", "value": 0.5, "threshold": 0.9, "passed": False}
    path = inside.write_report(
        tmp_path / "out" / "report", "<digits>", {"accuracy": 0.5}, gate, {"cm": str(png)}
    )
    page = path.read_text()
    assert "&lt;digits&gt;" in page and "<digits>" not in page
    assert "data:image/png;base64," in page
    assert "Quality gate FAILED" in page


def _promote_inputs(tmp_path: Path) -> dict[str, Any]:
    model_path = tmp_path / "model"
    (model_path / "model").mkdir(parents=True)
    (model_path / "history.json").write_text(json.dumps([{"epoch": 1, "train_loss": 1.0}]))
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text("{}")
    return {
        "usecase": "digits",
        "run_name": "r1",
        "dataset": {"source": "sklearn:load_digits", "digest": "abc", inside.TIMING_KEY: {}},
        "model_uri": str(model_path),
        "model_path": str(model_path),
        "model_meta": {"model_subdir": "model", "params": {"epochs": 1}},
        "metrics": {"accuracy": 0.93, "mlopsbench_timing": {"x": 1}},
        "evaluation_dir": str(evaluation),
        "out_dir": str(tmp_path / "promotion"),
    }


def test_promote_writes_a_record_without_mlflow(tmp_path: Path) -> None:
    record = inside.promote(mlflow_uri="", **_promote_inputs(tmp_path))
    saved = json.loads((tmp_path / "promotion" / inside.PROMOTION_FILE).read_text())
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
    record = inside.promote(mlflow_uri="sqlite:///x.db", **_promote_inputs(tmp_path))
    assert record["mlflow"]["run_id"] == "r-1"
    ((uri, kwargs),) = calls
    assert uri == "sqlite:///x.db"
    assert kwargs["tool"] == "kfp" and kwargs["usecase"] == "digits"
    assert kwargs["history"] == [{"epoch": 1, "train_loss": 1.0}]
    assert kwargs["model_dir"] == str(tmp_path / "model" / "model")
    assert set(kwargs["artifacts"]) == {"metrics.json"}
    assert inside.TIMING_KEY not in kwargs["dataset"]
    assert kwargs["params"] == {"epochs": 1}


def test_stamp_records_process_timing() -> None:
    artifact = SimpleNamespace(metadata={})
    inside.stamp(artifact, "train", entered=1.0e9, core_seconds=2.5)
    stamp = artifact.metadata[inside.TIMING_KEY]
    assert stamp["stage"] == "train" and stamp["core_seconds"] == 2.5
    assert stamp["process_started"] > 1.0e9  # this test process started after 2001


def test_adopt_folder_copies_outside_checkpoints_into_the_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    inside_dir = artifact / "model"
    inside_dir.mkdir(parents=True)
    assert inside.adopt_folder(inside_dir, artifact, "model") == "model"  # already in: kept

    hub = tmp_path / "hub" / "snapshot"
    hub.mkdir(parents=True)
    (tmp_path / "blob").write_text("weights")
    (hub / "model.safetensors").symlink_to(tmp_path / "blob")  # hub caches use symlinks
    other = tmp_path / "artifact2"
    other.mkdir()
    assert inside.adopt_folder(hub, other, "model") == "model"
    copied = other / "model" / "model.safetensors"
    assert copied.read_text() == "weights" and not copied.is_symlink()
