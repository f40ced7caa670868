"""A model that learned nothing is a valid run: the digits stages end with metrics and figures.

The test images are 60 copies of one noise image, so whatever training did, every embedding is
the same vector: the input that made sklearn's t-SNE segfault the whole process. The run must
finish, record chance-level metrics and a passed gate (threshold 0), and replace the t-SNE
figure with a placeholder that says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlopsbench.usecases.common.plots import PlotWarning
from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

PNG = b"\x89PNG\r\n\x1a\n"


def noise_npz(path: Path, n_train: int = 240, n_test: int = 60) -> Path:
    """Random images, random labels; one repeated test image (constant embeddings)."""
    rng = np.random.default_rng(0)
    one_image = rng.integers(0, 256, (1, 28, 28), dtype=np.uint8)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train),
        x_test=np.repeat(one_image, n_test, axis=0),
        y_test=np.arange(n_test) % 10,
    )
    return path


def test_noise_run_ends_with_metrics_gate_and_a_tsne_placeholder(tmp_path: Path) -> None:
    data_cfg = DigitsDataConfig(source="npz", path=str(noise_npz(tmp_path / "noise.npz")))
    cfg = DigitsConfig(model="cnn", epochs=1, threshold=0.0, data=data_cfg)
    data = stages.prepare_data(cfg, tmp_path)
    trained = stages.train_model(cfg, data["data_path"], tmp_path)
    with pytest.warns(PlotWarning, match="t-SNE skipped: embeddings are constant"):
        result = stages.evaluate_model(
            cfg, data["data_path"], trained["model_dir"], tmp_path, trained["history_path"]
        )

    # One repeated input gets one prediction: accuracy is that class's share (1/10 here).
    assert result["metrics"]["accuracy"] == pytest.approx(0.1)
    assert result["gate"] == {
        "metric": "accuracy",
        "value": pytest.approx(0.1),
        "threshold": 0.0,
        "passed": True,
    }
    assert json.loads((tmp_path / "metrics.json").read_text()) == result["metrics"]

    art = {k: Path(v) for k, v in result["artifacts"].items()}
    for key in ("confusion_matrix", "tsne", "training_curve"):
        assert art[key].read_bytes()[:8] == PNG, key
    notes = json.loads(art["plot_notes"].read_text())
    assert set(notes) == {"tsne"} and "constant" in notes["tsne"]
