from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsbench.usecases.sentiment import stages
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sentiment.data import Reviews

PNG = b"\x89PNG\r\n\x1a\n"


def test_prepare_data_hands_over_a_sample(trained: dict[str, Any]) -> None:
    data = trained["data"]
    assert set(data) >= {"data_path", "source", "digest", "n_test"}
    reviews = Reviews.load(data["data_path"])
    assert len(reviews) == data["n_test"] == 100 and reviews.digest == data["digest"]
    assert data["source"] == "fixture:reviews.jsonl"


def test_smoke_model_is_trained_and_saved(trained: dict[str, Any]) -> None:
    model = trained["model"]
    folder = Path(model["model_dir"])
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))  # no pickles
    assert model["model_name"] == "tiny-distilbert"
    history = model["history"]
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert json.loads(Path(model["history_path"]).read_text()) == history
    assert model["train_data"]["n_train"] == 200


def test_evaluate_writes_everything(evaluated: dict[str, Any], trained: dict[str, Any]) -> None:
    metrics = evaluated["metrics"]
    expected = {"accuracy", "macro_f1"} | {
        f"{m}_{c}" for m in ("precision", "recall", "f1") for c in ("negative", "positive")
    }
    assert set(metrics) == expected
    assert metrics["accuracy"] >= 0.80, "the smoke model should pass the paper's gate"
    assert evaluated["gate"] == {
        "metric": "accuracy",
        "value": metrics["accuracy"],
        "threshold": 0.8,
        "passed": True,
    }
    confusion = np.array(evaluated["confusion"])
    assert confusion.sum() == 100 and confusion.sum(axis=1).tolist() == [50, 50]
    art = {k: Path(v) for k, v in evaluated["artifacts"].items()}
    assert json.loads(art["metrics"].read_text()) == metrics
    evaluation = json.loads(art["evaluation"].read_text())
    assert evaluation["labels"] == ["negative", "positive"]
    assert evaluation["inference"]["precision_used"] == "fp32"
    rows = [json.loads(line) for line in art["predictions"].read_text().splitlines()]
    assert [r["id"] for r in rows] == list(Reviews.load(trained["data"]["data_path"]).ids)
    assert {"id", "label", "pred", "score"} <= set(rows[0])
    accuracy = np.mean([r["label"] == r["pred"] for r in rows])
    assert accuracy == pytest.approx(metrics["accuracy"])
    with np.load(art["embeddings"]) as emb:
        assert emb["embeddings"].shape == (100, 64) and emb["labels"].shape == (100,)
    for name in ("confusion_matrix", "tsne", "training_curve"):
        assert art[name].read_bytes()[:8] == PNG


def test_gate_failure_is_reported_not_raised(trained: dict[str, Any], tmp_path: Path) -> None:
    cfg = SentimentConfig(smoke=True, threshold=1.0)
    result = stages.evaluate_model(
        cfg, trained["data"]["data_path"], trained["model"]["model_dir"], tmp_path, plots=False
    )
    assert result["gate"]["passed"] is (result["metrics"]["accuracy"] >= 1.0)
    assert "tsne" not in result["artifacts"]


def test_fine_tune_path_continues_training(trained: dict[str, Any], tmp_path: Path) -> None:
    """--fine-tune on a local checkpoint uses the same loop; the result is seeded."""
    base = trained["model"]["model_dir"]
    cfg = SentimentConfig(
        model_path=base,
        source="fixture",
        fine_tune=True,
        fine_tune_epochs=1,
        fine_tune_lr=1e-4,
        train_sample_size=40,
    )
    first = stages.prepare_model(cfg, tmp_path / "a")
    second = stages.prepare_model(cfg, tmp_path / "b")
    assert second["history"][0]["train_loss"] == first["history"][0]["train_loss"]
    assert first["model_name"] == "local:model+finetuned"
    assert len(first["history"]) == 1 and first["train_data"]["n_train"] == 40
    assert Path(first["model_dir"]) == tmp_path / "a" / "model"
    a = (tmp_path / "a" / "model" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "model" / "model.safetensors").read_bytes()
    assert a == b != Path(base, "model.safetensors").read_bytes()


def test_evaluate_scores_an_already_loaded_predictor(
    evaluated: dict[str, Any],
    trained: dict[str, Any],
    smoke_cfg: SentimentConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Score once: a served model loaded elsewhere (a registry) is evaluated as it is, with
    every artefact, and the model folder is not loaded a second time."""
    from mlopsbench.usecases.sentiment import model as model_module
    from mlopsbench.usecases.sentiment.serving import Predictor, settings_of

    predictor = Predictor(trained["model"]["model_dir"], settings_of(smoke_cfg))

    def no_second_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model folder was loaded again")

    monkeypatch.setattr(model_module, "load_classifier", no_second_load)
    result = stages.evaluate_model(
        smoke_cfg,
        trained["data"]["data_path"],
        trained["model"]["model_dir"],
        tmp_path,
        history_path=trained["model"]["history_path"],
        predictor=predictor,
    )
    assert result["metrics"] == evaluated["metrics"]
    assert result["confusion"] == evaluated["confusion"]
    assert set(result["artifacts"]) == set(evaluated["artifacts"])
    with (
        np.load(result["artifacts"]["embeddings"]) as mine,
        np.load(evaluated["artifacts"]["embeddings"]) as theirs,
    ):
        assert np.allclose(mine["embeddings"], theirs["embeddings"], atol=1e-5)
