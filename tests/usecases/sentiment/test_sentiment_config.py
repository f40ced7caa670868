from __future__ import annotations

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.sentiment.config import DEFAULT_MODEL, SentimentConfig


def test_defaults_are_the_papers() -> None:
    cfg = SentimentConfig()
    assert cfg.data_source == "hf" and cfg.source is None
    assert cfg.test_size == 500
    assert cfg.max_length == 512 and cfg.truncation == "tokens"
    assert cfg.threshold == 0.80 and cfg.seed == 42
    assert cfg.model_label == DEFAULT_MODEL
    assert not cfg.trains


def test_smoke_defaults_to_fixture_and_trains() -> None:
    cfg = SentimentConfig(smoke=True)
    assert cfg.data_source == "fixture"
    assert cfg.test_size == 100
    assert cfg.trains
    assert cfg.model_label == "tiny-distilbert"
    assert cfg.epochs == 10 and cfg.lr == 1e-3


def test_fine_tune_label_and_defaults() -> None:
    cfg = SentimentConfig(model_path="/models/my-ckpt", fine_tune=True)
    assert cfg.model_label == "local:my-ckpt+finetuned"
    assert cfg.epochs == 2 and cfg.lr == 5e-5


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"source": "kaggle"}, "unknown data source 'kaggle'"),
        ({"truncation": "words"}, "unknown truncation 'words'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"source": "file"}, "needs --data-path"),
        ({"source": "aclimdb"}, "needs --data-path"),
        ({"smoke": True, "model_path": "x"}, "drop --model-path"),
        ({"sample_size": 7}, "even number"),
        ({"sample_size": 0}, "even number"),
        ({"max_length": 2}, "max_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"fine_tune_epochs": 0}, "fine_tune_epochs"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_invalid_values_raise_one_line_config_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        SentimentConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = SentimentConfig(smoke=True, sample_size=20, truncation="chars", max_length=300)
    assert SentimentConfig.from_dict(cfg.to_dict()) == cfg
    # An unset source follows smoke through a round trip (the harness flips smoke on defaults).
    flipped = SentimentConfig.from_dict({**SentimentConfig().to_dict(), "smoke": True})
    assert flipped.data_source == "fixture" and flipped.test_size == 100
    explicit = SentimentConfig(smoke=True, source="file", data_path="r.csv")
    assert SentimentConfig.from_dict(explicit.to_dict()).data_source == "file"
    with pytest.raises(ConfigError, match="unknown sentiment config keys: epochs"):
        SentimentConfig.from_dict({**cfg.to_dict(), "epochs": 3})
