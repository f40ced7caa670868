from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app


@pytest.mark.slow
def test_run_sentiment_smoke_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "sentiment", "--tool", "plain", "--smoke", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    (record_path,) = tmp_path.glob("sentiment-plain-*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok" and record["model"] == "tiny-distilbert"
    assert record["metrics"]["accuracy"] >= 0.80
    assert set(record["timings"]) == {"data", "model", "evaluate"}
    assert record["tool_info"]["dataset"]["n_test"] == 100
    assert record["params"]["smoke"] is True
    assert record["tool_info"]["dataset"]["source"] == "fixture:reviews.jsonl"
    for name in ("model", "predictions", "embeddings", "tsne", "confusion_matrix"):
        assert Path(record["artifacts"][name]).exists()


def test_bad_data_path_is_one_line_no_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "sentiment",
            "--data",
            "file",
            "--data-path",
            str(tmp_path / "missing.csv"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "data file not found" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*/result.json"))


def test_bad_option_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "sentiment", "--smoke", "--truncation", "words", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown truncation 'words'" in result.output


def test_hub_model_offline_is_one_line_with_instructions(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "sentiment", "--data", "fixture", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--model-path" in result.output and "--smoke" in result.output
    assert not list(tmp_path.glob("*/result.json"))
