"""The digits stages: evaluation of an already loaded model (score once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


def test_evaluate_scores_an_already_loaded_predictor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A served model loaded elsewhere (a registry) is evaluated as it is, with every artefact,
    and the saved folder is not loaded a second time."""
    from mlopsbench.usecases.digits import storage
    from mlopsbench.usecases.digits.serving import Predictor

    cfg = DigitsConfig(model="simple", epochs=1, data=DigitsDataConfig(limit_train=300))
    data = stages.prepare_data(cfg, tmp_path)
    model = stages.train_model(cfg, data["data_path"], tmp_path)
    from_folder = stages.evaluate_model(
        cfg, data["data_path"], model["model_dir"], tmp_path / "folder", plots=False
    )
    predictor = Predictor(model["model_dir"])

    def no_second_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model folder was loaded again")

    monkeypatch.setattr(storage, "load_model", no_second_load)
    (tmp_path / "loaded").mkdir()
    loaded = stages.evaluate_model(
        cfg,
        data["data_path"],
        model["model_dir"],
        tmp_path / "loaded",
        history_path=model["history_path"],
        predictor=predictor,
    )
    assert loaded["metrics"] == from_folder["metrics"]
    assert loaded["confusion"] == from_folder["confusion"]
    assert {"metrics", "evaluation", "embeddings", "tsne", "confusion_matrix"} <= set(
        loaded["artifacts"]
    )
    with np.load(loaded["artifacts"]["embeddings"]) as emb:
        assert emb["embeddings"].shape == (360, 128)
