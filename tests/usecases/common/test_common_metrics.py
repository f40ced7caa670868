"""The shared metrics agree with scikit-learn's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlopsbench.usecases.common.metrics import classification_report

LABELS = [str(i) for i in range(10)]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 10, 500)
    # Mostly right, some noise, and class 9 never predicted (zero-division path).
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 9, 500))
    y_pred[y_pred == 9] = 8
    report = classification_report(y_true, y_pred, LABELS)

    assert report.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(10), zero_division=0
    )
    for i, name in enumerate(LABELS):
        row = report.per_class[name]
        assert row["precision"] == pytest.approx(p[i])
        assert row["recall"] == pytest.approx(r[i])
        assert row["f1"] == pytest.approx(f[i])
        assert row["support"] == s[i]
    assert report.macro_f1 == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=range(10), zero_division=0)
    )
    assert report.confusion == skm.confusion_matrix(y_true, y_pred, labels=range(10)).tolist()


def test_flat_metrics_and_dict() -> None:
    report = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["neg", "pos"])
    flat = report.flat_metrics(prefix="test_")
    assert flat["test_accuracy"] == pytest.approx(2 / 3)
    assert flat["test_precision_neg"] == pytest.approx(0.5)
    assert flat["test_recall_pos"] == pytest.approx(0.5)
    assert set(report.to_dict()) == {"accuracy", "macro_f1", "per_class", "confusion", "labels"}
    assert report.to_dict()["confusion"] == [[1, 0], [1, 1]]
