"""Classification metrics shared by both use cases (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    per_class: dict[str, dict[str, float]]  # class name -> precision/recall/f1/support
    confusion: list[list[int]]  # rows = true class, columns = predicted class
    labels: list[str]
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "labels": self.labels,
        }

    def flat_metrics(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics with flat names (e.g. ``f1_3``), ready for a tracker."""
        flat = {f"{prefix}accuracy": self.accuracy, f"{prefix}macro_f1": self.macro_f1}
        for name, row in self.per_class.items():
            for key in ("precision", "recall", "f1"):
                flat[f"{prefix}{key}_{name}"] = row[key]
        return flat


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]
) -> ClassificationReport:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix, from integer labels."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    per_class = {
        labels[i]: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i in range(k)
    }
    accuracy = float(tp.sum() / max(len(y_true), 1))
    return ClassificationReport(
        accuracy=accuracy,
        per_class=per_class,
        confusion=confusion.tolist(),
        labels=list(labels),
        macro_f1=float(f1.mean()) if k else 0.0,
    )
