"""The figures every tool attaches: real PNG files, written atomically, for any input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlopsbench.usecases.common.plots import (
    PlotWarning,
    confusion_matrix_png,
    training_curve_png,
    tsne_png,
)

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG


def test_confusion_and_curve(tmp_path: Path) -> None:
    cm = confusion_matrix_png([[5, 1], [2, 7]], ["neg", "pos"], tmp_path / "cm.png")
    history = [
        {"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10}
        for e in (1, 2, 3)
    ]
    curve = training_curve_png(history, tmp_path / "sub" / "curve.png")
    assert is_png(cm) and is_png(curve)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cm.png", "curve.png", "sub"]


def test_tsne_small_and_tiny_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 10
    emb = rng.normal(size=(40, 16)) + labels[:, None]
    out = tsne_png(emb, labels, [str(i) for i in range(10)], tmp_path / "tsne.png")
    assert is_png(out)
    # Fewer points than t-SNE can embed still gives a picture (saying so) rather than an error.
    with pytest.warns(PlotWarning, match="only 3 point"):
        few = tsne_png(emb[:3], labels[:3], [str(i) for i in range(10)], tmp_path / "few.png")
    assert is_png(few)
