"""The two use cases seen through one interface: the core's stages plus what validation needs.

The runner is written once; this module says, per use case, which core stage builds the model
(``train`` for digits, ``model`` for sentiment), what the registered model is called, and how
to turn the test split into the registered model's input and the true labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError


@dataclass(frozen=True)
class ValidationSet:
    """The test split as the served model sees it, plus the truth to score it against."""

    model_input: Any  # ndarray of uint8 images / DataFrame with a ``text`` column
    y_true: Any  # int64 (N,)
    labels: list[str]


def check_usecase(usecase: str) -> None:
    if usecase not in ("digits", "sentiment"):
        raise ConfigError(f"unknown use case {usecase!r}; choose digits or sentiment")


def model_stage(usecase: str) -> str:
    """Timing key of the model-building stage (the core's names)."""
    return "train" if usecase == "digits" else "model"


def model_label(usecase: str, cfg: Any) -> str:
    return str(cfg.model if usecase == "digits" else cfg.model_label)


def registered_name(usecase: str, cfg: Any) -> str:
    """``digits-<model>`` / ``sentiment-<label>``, reduced to characters every store accepts."""
    label = re.sub(r"[^a-z0-9._-]+", "-", model_label(usecase, cfg).lower()).strip("-")
    return f"{usecase}-{label}"


def model_settings(usecase: str, cfg: Any) -> dict[str, Any]:
    """Inference options the served model must share with the pipeline (truncation etc.)."""
    if usecase == "digits":
        return {}
    return {
        "batch_size": cfg.batch_size,
        "max_length": cfg.max_length,
        "truncation": cfg.truncation,
    }


def prepare_data(usecase: str, cfg: Any, out_dir: Path) -> dict[str, Any]:
    return _stages(usecase).prepare_data(cfg, out_dir)  # type: ignore[no-any-return]


def build_model(
    usecase: str, cfg: Any, data_path: str, out_dir: Path, show_progress: bool
) -> dict[str, Any]:
    """Train (digits) or load/fine-tune (sentiment); returns at least model_dir + history."""
    stages = _stages(usecase)
    if usecase == "digits":
        return stages.train_model(cfg, data_path, out_dir, show_progress=show_progress)  # type: ignore[no-any-return]
    built = stages.prepare_model(cfg, out_dir, show_progress=show_progress)
    return {"history": [], **built}


def evaluate(
    usecase: str, cfg: Any, data_path: str, model_dir: str, out_dir: Path
) -> dict[str, Any]:
    return _stages(usecase).evaluate_model(cfg, data_path, model_dir, out_dir)  # type: ignore[no-any-return]


def validation_set(usecase: str, data_path: str) -> ValidationSet:
    """Load the test split handed over by ``prepare_data`` in the served model's input format."""
    import numpy as np

    if usecase == "digits":
        from mlopsbench.usecases.digits.data import DigitsData
        from mlopsbench.usecases.digits.evaluate import DIGIT_LABELS

        data = DigitsData.load(data_path)
        return ValidationSet(
            data.test_images, data.test_labels.astype(np.int64), list(DIGIT_LABELS)
        )
    import pandas as pd

    from mlopsbench.usecases.sentiment.config import LABELS
    from mlopsbench.usecases.sentiment.data import Reviews

    reviews = Reviews.load(data_path)
    return ValidationSet(
        pd.DataFrame({"text": list(reviews.texts)}), reviews.labels.astype(np.int64), list(LABELS)
    )


def predictions_to_ids(predictions: Any) -> Any:
    """The pyfunc's answer (array, Series or a DataFrame with ``label``) as int64 ids."""
    import numpy as np

    if hasattr(predictions, "columns"):
        predictions = (
            predictions["label"] if "label" in predictions.columns else predictions.iloc[:, 0]
        )
    return np.asarray(predictions).astype(np.int64).reshape(-1)


def _stages(usecase: str) -> Any:
    check_usecase(usecase)
    if usecase == "digits":
        from mlopsbench.usecases.digits import stages
    else:
        from mlopsbench.usecases.sentiment import stages  # type: ignore[no-redef]
    return stages
