"""The digits model as a service sees it: load the saved folder once, predict image batches.

Light on purpose (torch, numpy, safetensors): a registered model ships this module and what it
imports, and loads where only the model's own requirements are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def settings_of(cfg: Any) -> dict[str, Any]:
    """Digits models need no inference settings beyond their weights."""
    return {}


class Predictor:
    """uint8 images (N, 28, 28) or flat (N, 784), as an array, DataFrame or named tensor ->
    int64 digit classes."""

    def __init__(self, model_dir: str | Path, settings: Mapping[str, Any] | None = None) -> None:
        from mlopsbench.usecases.digits.storage import load_model

        self.model = load_model(model_dir)

    def predict(self, model_input: Any) -> Any:
        import numpy as np

        from mlopsbench.usecases.digits.evaluate import predict

        if isinstance(model_input, dict):  # a named tensor input
            model_input = next(iter(model_input.values()))
        # The core checks the shape ((N, 28, 28) or flat (N, 784)) and the 0..255 range.
        return predict(self.model, np.asarray(getattr(model_input, "values", model_input)))
