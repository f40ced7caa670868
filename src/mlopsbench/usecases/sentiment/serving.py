"""The sentiment model as a service sees it: load the checkpoint once, classify texts with the
run's inference settings (batch size, truncation), so it answers what the pipeline evaluated.

Light on purpose (torch, transformers): a registered model ships this module and what it
imports, and loads where only the model's own requirements are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SETTINGS = ("batch_size", "max_length", "truncation")  # what serving shares with the pipeline


def settings_of(cfg: Any) -> dict[str, Any]:
    """The inference settings of a config that the served model must keep."""
    return {name: getattr(cfg, name) for name in SETTINGS}


class Predictor:
    """A DataFrame with a ``text`` column (or a list of texts) -> DataFrame ``label`` (int64,
    1 = positive)."""

    def __init__(self, model_dir: str | Path, settings: Mapping[str, Any] | None = None) -> None:
        from mlopsbench.usecases.sentiment.model import load_classifier

        self.model, self.tokenizer = load_classifier(model_dir)
        self.settings = {
            k: v for k, v in (settings or {}).items() if k in SETTINGS and v is not None
        }

    def predict(self, model_input: Any) -> Any:
        import pandas as pd

        from mlopsbench.usecases.sentiment.infer import predict

        texts = _texts(model_input)
        if not texts:
            return pd.DataFrame({"label": pd.Series([], dtype="int64")})
        preds = predict(self.model, self.tokenizer, texts, **self.settings).preds
        return pd.DataFrame({"label": preds.astype("int64")})


def _texts(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        if "text" not in model_input.columns:
            raise ValueError("expected a DataFrame with a 'text' column")
        return [str(t) for t in model_input["text"].tolist()]
    if isinstance(model_input, dict) and "text" in model_input:
        return [str(t) for t in model_input["text"]]
    return [str(t) for t in model_input]
