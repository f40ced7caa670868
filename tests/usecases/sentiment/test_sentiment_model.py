from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.sentiment import stages
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sentiment.model import check_model_dir, load_classifier
from mlopsbench.usecases.sentiment.tiny import build_tokenizer, build_vocab


def test_hub_model_offline_says_how_to_provide_it(tmp_path: Path) -> None:
    # tests/conftest.py sets HF_HUB_OFFLINE=1 and an empty HOME (so an empty HF cache).
    with pytest.raises(DataError) as info:
        stages.prepare_model(SentimentConfig(), tmp_path)
    message = str(info.value)
    assert "distilbert-base-uncased-finetuned-sst-2-english" in message
    for hint in ("HF_HUB_OFFLINE", "hf download", "--model-path", "--smoke"):
        assert hint in message
    assert "\n" not in message


def test_model_path_is_used_as_is(trained: dict[str, Any], tmp_path: Path) -> None:
    model_dir = trained["model"]["model_dir"]
    cfg = SentimentConfig(model_path=model_dir, source="fixture")
    result = stages.prepare_model(cfg, tmp_path)
    assert result["model_dir"] == model_dir and result["history"] == []
    assert result["model_name"] == "local:model"
    assert not list(tmp_path.iterdir())  # nothing copied, nothing trained


def test_incomplete_model_folders_are_rejected(trained: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="model folder not found"):
        check_model_dir(tmp_path / "missing")
    broken = tmp_path / "broken"
    shutil.copytree(trained["model"]["model_dir"], broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(DataError, match="missing weights"):
        load_classifier(broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot load the checkpoint"):
        load_classifier(broken)


def test_three_label_checkpoints_are_refused(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(
        vocab_size=60, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=3
    )
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path)
    build_tokenizer(["a b c"]).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="3 labels; sentiment needs 2"):
        load_classifier(tmp_path)


def test_vocab_is_deterministic_and_covers_unseen_words() -> None:
    texts = ["A great film!", "An awful film.", "great great cast"]
    assert build_vocab(texts) == build_vocab(list(reversed(texts)))
    tok = build_tokenizer(texts)
    ids = tok("great zebra")["input_ids"]
    assert tok.unk_token_id not in ids  # unseen words split into character pieces
    assert tok.convert_ids_to_tokens(ids)[:2] == ["[CLS]", "great"]
