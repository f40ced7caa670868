"""A model folder's config.json, however broken, is a one-line DataError naming the file.

transformers failed on a config.json that is valid JSON but not an object with a TypeError
traceback; every way the core reads a model folder (``resolve_model_dir``, ``check_model_dir``,
``load_classifier``) now says what is wrong with the file instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import DataError, MlopsbenchError
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sentiment.model import (
    check_model_config,
    check_model_dir,
    load_classifier,
    resolve_model_dir,
)

BROKEN_CONFIGS = [
    ("[1, 2, 3]", "must be a JSON object, got a JSON list"),
    ('"distilbert"', "must be a JSON object, got a JSON str"),
    ("null", "must be a JSON object, got a JSON NoneType"),
    ("{not json", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("{}", "lacks a 'model_type' string"),
    ('{"model_type": 5}', "lacks a 'model_type' string"),
    ('{"model_type": "  "}', "lacks a 'model_type' string"),
]


def one_line_error(exc: pytest.ExceptionInfo[MlopsbenchError]) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, DataError)
    assert "\n" not in message and message
    return message


def every_reader(folder: Path) -> list[Any]:
    """The core's entry points that read a model folder."""
    return [
        lambda: resolve_model_dir(SentimentConfig(model_path=str(folder))),
        lambda: check_model_dir(folder),
        lambda: load_classifier(folder),
    ]


@pytest.fixture
def checkpoint(trained: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the trained smoke model (config, weights, tokenizer) to break."""
    folder = tmp_path / "model"
    shutil.copytree(trained["model"]["model_dir"], folder)
    return folder


@pytest.mark.parametrize(
    ("content", "expected"), BROKEN_CONFIGS, ids=[c for c, _ in BROKEN_CONFIGS]
)
def test_broken_config_json_is_a_one_line_data_error(
    checkpoint: Path, content: str, expected: str
) -> None:
    (checkpoint / "config.json").write_text(content)
    for read in every_reader(checkpoint):
        with pytest.raises(DataError) as exc:
            read()
        message = one_line_error(exc)
        assert expected in message and str(checkpoint / "config.json") in message


def test_broken_config_is_named_even_without_weights(tmp_path: Path) -> None:
    """A folder with only a bad config.json: the config is the problem reported first."""
    (tmp_path / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(DataError) as exc:
        check_model_dir(tmp_path)
    assert "config.json must be a JSON object" in one_line_error(exc)


def test_config_json_that_is_not_utf8(checkpoint: Path) -> None:
    (checkpoint / "config.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError) as exc:
        load_classifier(checkpoint)
    assert "cannot read model config" in one_line_error(exc)
    assert "UnicodeDecodeError" in str(exc.value)


def test_unreadable_config_json(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions cannot be tested as root: make reading this one file fail instead."""
    config = checkpoint / "config.json"
    real_read_text = Path.read_text

    def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == config:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    for read in every_reader(checkpoint):
        with pytest.raises(DataError) as exc:
            read()
        assert "cannot read model config" in one_line_error(exc)
        assert "PermissionError" in str(exc.value)


def test_missing_config_json(checkpoint: Path) -> None:
    (checkpoint / "config.json").unlink()
    for read in every_reader(checkpoint):
        with pytest.raises(DataError) as exc:
            read()
        assert "missing config.json" in one_line_error(exc)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"dim": "x"}, "Field 'dim' expected int"),  # huggingface_hub's strict dataclass error
        ({"num_labels": "two"}, "cannot load the checkpoint"),  # a TypeError in transformers
        ({"model_type": "no-such-architecture"}, "no-such-architecture"),
    ],
    ids=["dim-not-int", "num-labels-not-int", "unknown-model-type"],
)
def test_config_values_of_the_wrong_type(
    checkpoint: Path, change: dict[str, Any], expected: str
) -> None:
    config = checkpoint / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **change}))
    check_model_dir(checkpoint)  # the structure is fine; transformers refuses the values
    with pytest.raises(DataError) as exc:
        load_classifier(checkpoint)
    assert expected in one_line_error(exc)


def test_a_valid_config_is_returned(checkpoint: Path) -> None:
    assert check_model_config(checkpoint / "config.json")["model_type"] == "distilbert"
