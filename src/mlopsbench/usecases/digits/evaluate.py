"""Evaluation of a trained digit model: metrics, confusion matrix and embeddings in one pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mlopsbench.errors import DataError
from mlopsbench.usecases.common.metrics import ClassificationReport, classification_report
from mlopsbench.usecases.digits.data import IMAGE_SIZE, DigitsData, as_uint8_images
from mlopsbench.usecases.digits.train import iterate_batches, to_input

DIGIT_LABELS = [str(i) for i in range(10)]


@dataclass(frozen=True)
class DigitsEvaluation:
    report: ClassificationReport
    loss: float
    predictions: np.ndarray  # int64 (N,)
    labels: np.ndarray  # int64 (N,)
    embeddings: np.ndarray  # float32 (N, D): penultimate-layer activations

    @property
    def accuracy(self) -> float:
        return self.report.accuracy

    def metrics(self) -> dict[str, float]:
        """Flat scalar metrics (accuracy, loss, macro F1, per-class P/R/F1)."""
        flat = self.report.flat_metrics()
        flat["loss"] = self.loss
        return flat


@torch.inference_mode()
def evaluate(model: nn.Module, data: DigitsData, batch_size: int = 512) -> DigitsEvaluation:
    """Score ``model`` on the test split (fp32, eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    channels_last = _prefer_channels_last(model)
    images = torch.from_numpy(data.test_images).to(device)
    labels = torch.from_numpy(data.test_labels).to(device)
    preds, feats = [], []
    loss_sum = 0.0
    for idx in iterate_batches(len(labels), batch_size, None):
        x = to_input(images[idx], channels_last)
        z = model.features(x)  # type: ignore[operator]
        logits = model.head(z)  # type: ignore[operator]
        loss_sum += float(nn.functional.cross_entropy(logits, labels[idx], reduction="sum"))
        preds.append(logits.argmax(1).cpu())
        feats.append(z.float().cpu())
    y_pred = torch.cat(preds).numpy().astype(np.int64)
    y_true = data.test_labels.astype(np.int64)
    return DigitsEvaluation(
        report=classification_report(y_true, y_pred, DIGIT_LABELS),
        loss=loss_sum / max(len(y_true), 1),
        predictions=y_pred,
        labels=y_true,
        embeddings=torch.cat(feats).numpy().astype(np.float32),
    )


@torch.inference_mode()
def predict(model: nn.Module, images_u8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class predictions for uint8 images (N, 28, 28) — what a served model answers."""
    model.eval()
    device = next(model.parameters()).device
    channels_last = _prefer_channels_last(model)
    x_all = torch.from_numpy(np.ascontiguousarray(as_image_batch(images_u8))).to(device)
    out = [
        model(to_input(x_all[idx], channels_last)).argmax(1).cpu()
        for idx in iterate_batches(len(x_all), batch_size, None)
    ]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def as_image_batch(images: np.ndarray) -> np.ndarray:
    """Coerce (N, 28, 28), (N, 1, 28, 28) or flat (N, 784) images to uint8 (N, 28, 28)."""
    arr = np.asarray(images)
    if arr.ndim == 2 and arr.shape[1] == IMAGE_SIZE * IMAGE_SIZE:
        arr = arr.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"images must have shape (N, 28, 28) or (N, 784), got {arr.shape}")
    return as_uint8_images(arr, "input")


def _prefer_channels_last(model: nn.Module) -> bool:
    """Put a convolutional model in channels_last (in place): oneDNN's fast path, same math."""
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return False
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return True
