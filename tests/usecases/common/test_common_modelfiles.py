"""What every tool's evidence counts as a stored model: weights, or a checkpoint's reference."""

from __future__ import annotations

from pathlib import Path

from mlopsbench.usecases.common.modelfiles import folder_holds_model, holds_model


def test_weights_or_a_reference_count_and_nothing_else() -> None:
    assert holds_model({"model.safetensors": 1024, "model.json": 80})
    assert holds_model({"model/reference.json": 300})  # a checkpoint used as it is
    assert holds_model({"model.safetensors": None})  # the store lists names only (DVC)
    assert holds_model({"model.safetensors": "1024"})  # a manifest's size as text
    assert not holds_model({"model.safetensors": 0})  # empty weights are no model
    assert not holds_model({"model.json": 80, "history.json": 40})
    assert not holds_model({})


def test_folders_on_disk(tmp_path: Path) -> None:
    assert not folder_holds_model(None)
    assert not folder_holds_model(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    assert not folder_holds_model(tmp_path)
    (tmp_path / "reference.json").write_text('{"kind": "checkpoint-reference"}')
    assert folder_holds_model(tmp_path)
