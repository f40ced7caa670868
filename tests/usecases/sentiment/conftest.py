"""Shared fixtures: the smoke model is trained once per session and reused (it takes seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlopsbench.usecases.sentiment.config import SentimentConfig


@pytest.fixture(scope="session")
def smoke_cfg() -> SentimentConfig:
    return SentimentConfig(smoke=True)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, smoke_cfg: SentimentConfig) -> dict[str, Any]:
    """``prepare_data`` + ``prepare_model`` of the smoke config, in one session folder."""
    from mlopsbench.usecases.sentiment import stages

    out = tmp_path_factory.mktemp("sentiment-smoke")
    data = stages.prepare_data(smoke_cfg, out)
    model = stages.prepare_model(smoke_cfg, out)
    return {"out": out, "data": data, "model": model}


@pytest.fixture(scope="session")
def tiny(trained: dict[str, Any]) -> tuple[Any, Any]:
    """(model, tokenizer) of the trained smoke model, loaded from its saved folder."""
    from mlopsbench.usecases.sentiment.model import load_classifier

    return load_classifier(Path(trained["model"]["model_dir"]))


@pytest.fixture(scope="session")
def evaluated(trained: dict[str, Any], smoke_cfg: SentimentConfig) -> dict[str, Any]:
    from mlopsbench.usecases.sentiment import stages

    out = trained["out"] / "eval"
    return stages.evaluate_model(
        smoke_cfg,
        trained["data"]["data_path"],
        trained["model"]["model_dir"],
        out,
        history_path=trained["model"]["history_path"],
    )
