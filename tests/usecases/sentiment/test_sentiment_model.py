from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.usecases.sentiment import stages
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sentiment.model import (
    REFERENCE_FILE,
    REFERENCE_KIND,
    check_model_dir,
    is_reference,
    load_classifier,
    read_reference,
    write_reference,
)
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


def test_model_path_is_used_by_reference(trained: dict[str, Any], tmp_path: Path) -> None:
    """A checkpoint used as it is: the model folder holds only its reference (no weights)."""
    checkpoint = Path(trained["model"]["model_dir"])
    cfg = SentimentConfig(model_path=str(checkpoint), source="fixture")
    result = stages.prepare_model(cfg, tmp_path)
    folder = Path(result["model_dir"])
    assert folder == tmp_path / "model" and result["history"] == []
    assert result["model_name"] == "local:model"
    assert [p.name for p in folder.iterdir()] == [REFERENCE_FILE] and is_reference(folder)
    reference = read_reference(folder)
    assert reference == result["model_reference"]
    weights = checkpoint / "model.safetensors"
    assert reference["source"] == "local" and reference["revision"] is None
    assert reference["path"] == str(checkpoint.resolve())
    assert reference["weights"] == {
        "model.safetensors": {
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "bytes": weights.stat().st_size,
        }
    }
    # Every reader of a model folder resolves the reference to the checkpoint itself.
    assert check_model_dir(folder) == checkpoint.resolve()
    model, _ = load_classifier(folder)
    original, _ = load_classifier(checkpoint)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), original.state_dict().values(), strict=True)
    )


def test_a_reference_resolves_only_to_the_recorded_weights(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(trained["model"]["model_dir"], checkpoint)
    cfg = SentimentConfig(model_path=str(checkpoint), source="fixture")
    folder = stages.prepare_model(cfg, tmp_path / "run")["model_dir"]
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, other weights
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not available with the recorded weights") as info:
        load_classifier(folder)
    assert "\n" not in str(info.value)
    shutil.rmtree(checkpoint)
    with pytest.raises(DataError, match="refers to is not available"):
        check_model_dir(Path(folder))
    Path(folder, REFERENCE_FILE).write_text("{}")
    with pytest.raises(DataError, match="unreadable model reference"):
        load_classifier(folder)


def test_a_hub_reference_names_the_revision(tmp_path: Path) -> None:
    """Offline and not cached: the hub model at the recorded revision cannot be had."""
    folder = write_reference(
        {
            "kind": REFERENCE_KIND,
            "model_name": "distilbert-base-uncased-finetuned-sst-2-english",
            "source": "hub",
            "revision": "0" * 40,
            "path": str(tmp_path / "gone"),
            "weights": {"model.safetensors": {"sha256": "0" * 64, "bytes": 1}},
        },
        tmp_path / "model",
    )
    with pytest.raises(DataError, match=r"not available|HF_HUB_OFFLINE"):
        load_classifier(folder)


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
