"""Trainer determinism and precision, evaluation, and the save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.digits import train as train_mod
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.digits.data import DigitsData
from mlopsbench.usecases.digits.evaluate import as_image_batch, evaluate, predict
from mlopsbench.usecases.digits.storage import SPEC_FILE, WEIGHTS_FILE, load_model, save_model
from mlopsbench.usecases.digits.train import (
    EpochStats,
    flush_denormals,
    resolve_precision,
    train,
)


def tiny(data: DigitsData, n: int = 128) -> DigitsData:
    """The first ``n`` training images: one epoch is two batches."""
    return DigitsData(
        data.train_images[:n], data.train_labels[:n], data.test_images, data.test_labels, "tiny"
    )


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("model", ["simple", "deep", "cnn"])
def test_same_seed_same_metrics_and_weights(small: DigitsData, model: str) -> None:
    cfg = DigitsConfig(model=model, epochs=1, seed=3)
    first, second = train(cfg, tiny(small)), train(cfg, tiny(small))
    assert without_seconds(first.history_dicts()) == without_seconds(second.history_dicts())
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    other = train(DigitsConfig(model=model, epochs=1, seed=4), tiny(small))
    assert without_seconds(other.history_dicts()) != without_seconds(first.history_dicts())


def test_history_and_callback(small: DigitsData) -> None:
    seen: list[EpochStats] = []
    out = train(DigitsConfig(model="simple", epochs=2), tiny(small), on_epoch_end=seen.append)
    assert [e.epoch for e in seen] == [1, 2] and out.history == seen
    row = out.history_dicts()[0]
    assert set(row) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
    }
    assert all(np.isfinite(v) for v in row.values())
    assert out.precision == "fp32" and out.device == "cpu" and out.seconds > 0
    assert not out.model.training  # handed back in eval mode


def test_progress_bar_runs(small: DigitsData) -> None:
    out = train(DigitsConfig(model="simple", epochs=1), tiny(small, 64), show_progress=True)
    assert len(out.history) == 1


def test_bf16_trains_and_learns(bundled: DigitsData) -> None:
    fp32 = train(DigitsConfig(model="cnn", epochs=1, precision="fp32"), bundled)
    bf16 = train(DigitsConfig(model="cnn", epochs=1, precision="bf16"), bundled)
    assert bf16.precision == "bf16"
    # Weights and optimizer state stay fp32 under autocast; only the math is bf16.
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert bf16.history[-1].test_accuracy > 0.85
    assert abs(bf16.history[-1].test_accuracy - fp32.history[-1].test_accuracy) < 0.05


def test_auto_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(train_mod, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("auto", cpu, "cnn") == "bf16"
    assert resolve_precision("auto", cpu, "simple") == "fp32"  # autocast slows the small MLPs
    assert resolve_precision("fp32", cpu, "cnn") == "fp32"
    monkeypatch.setattr(train_mod, "cpu_supports_bf16", lambda: False)
    assert resolve_precision("auto", cpu, "cnn") == "fp32"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"threshold": 1.5}, "threshold"),
        ({"precision": "fp8"}, "unknown precision"),
        ({"device": "tpu"}, "unknown device"),
        ({"model": "vgg"}, "unknown model"),
    ],
)
def test_bad_config_values(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        DigitsConfig(**kwargs)  # type: ignore[arg-type]


def test_config_round_trips_through_flat_dict() -> None:
    cfg = DigitsConfig(model="SimpleNN", epochs=2, precision="bf16")
    flat = cfg.to_dict()
    assert flat["model"] == "simple" and flat["data_source"] == "sklearn"
    assert DigitsConfig.from_dict(flat) == cfg
    with pytest.raises(ConfigError, match="unknown digits config keys: colour"):
        DigitsConfig.from_dict({**flat, "colour": "red"})


def test_cuda_request_without_gpu_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train_mod.resolve_device("cuda")


@pytest.mark.parametrize("model", ["simple", "cnn"])
def test_save_load_round_trip_gives_identical_predictions(
    small: DigitsData, tmp_path: Path, model: str
) -> None:
    trained = train(DigitsConfig(model=model, epochs=1), tiny(small)).model
    folder = save_model(trained, model, tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {WEIGHTS_FILE, SPEC_FILE}  # no pickle, no temp
    loaded = load_model(folder)
    before, after = predict(trained, small.test_images), predict(loaded, small.test_images)
    np.testing.assert_array_equal(before, after)
    first, second = evaluate(trained, small), evaluate(loaded, small)
    assert first.metrics() == second.metrics()
    np.testing.assert_allclose(first.embeddings, second.embeddings, rtol=1e-5, atol=1e-5)


def test_load_model_errors(tmp_path: Path, small: DigitsData) -> None:
    with pytest.raises(DataError, match="no saved digits model"):
        load_model(tmp_path / "missing")
    folder = save_model(train(DigitsConfig(model="simple", epochs=1), tiny(small)).model,
                        "simple", tmp_path / "m")  # fmt: skip
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="corrupt digits model"):
        load_model(folder)
    # Weights of one architecture under another's name.
    save_model(train(DigitsConfig(model="simple", epochs=1), tiny(small)).model, "cnn", folder)
    with pytest.raises(DataError, match="corrupt digits model"):
        load_model(folder)


def test_evaluate_reports_everything(small: DigitsData) -> None:
    out = train(DigitsConfig(model="cnn", epochs=1), small)
    ev = evaluate(out.model, small)
    n = len(small.test_labels)
    assert ev.predictions.shape == (n,) and ev.embeddings.shape == (n, 128)
    assert ev.accuracy == pytest.approx(float(np.mean(ev.predictions == small.test_labels)))
    metrics = ev.metrics()
    assert {"accuracy", "loss", "macro_f1", "precision_0", "recall_9", "f1_5"} <= set(metrics)
    assert np.asarray(ev.report.confusion).sum() == n
    # The trainer's last test score is the same model on the same split.
    assert ev.accuracy == pytest.approx(out.history[-1].test_accuracy)
    assert ev.loss == pytest.approx(out.history[-1].test_loss, rel=1e-4)


def test_predict_accepts_served_shapes(small: DigitsData) -> None:
    model = train(DigitsConfig(model="simple", epochs=1), tiny(small)).model
    images = small.test_images[:5]
    expected = predict(model, images)
    np.testing.assert_array_equal(predict(model, images.reshape(5, 784)), expected)
    np.testing.assert_array_equal(predict(model, images[:, None].astype(np.float64)), expected)
    assert predict(model, images[:0]).shape == (0,)
    with pytest.raises(DataError, match=r"shape \(N, 28, 28\)"):
        as_image_batch(np.zeros((2, 27, 27)))


def test_subnormals_are_flushed_while_training_and_only_then() -> None:
    subnormal = torch.tensor([1e-39], dtype=torch.float32)  # below float32's normal range
    with flush_denormals(torch.device("cpu")):
        inside = float((subnormal * 1.0).item())
    outside = float((subnormal * 1.0).item())
    assert inside == 0.0  # flushed (x86's FTZ/DAZ)
    assert outside > 0.0  # and the process-wide setting is torch's default again
