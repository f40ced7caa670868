"""The sentiment job end to end with the offline smoke model: the same accuracy as plain."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsbench.result import RunResult
from mlopsbench.tools.dagster import adapter

pytestmark = pytest.mark.slow


def test_smoke_run(sentiment_run: RunResult) -> None:
    assert sentiment_run.status == "ok", sentiment_run.error
    assert sentiment_run.model == "tiny-distilbert"
    assert sentiment_run.metrics["accuracy"] == pytest.approx(0.91)  # plain's, same config
    for key in ("data", "model", "evaluate", "dagster_overhead"):
        assert sentiment_run.timings[key] > 0, key
    assert sentiment_run.history and all("epoch" in row for row in sentiment_run.history)
    assert sentiment_run.tool_info["inference"]["precision_used"] == "fp32"
    model = Path(sentiment_run.artifacts["model"])
    assert (model / "config.json").is_file()
    assert model.is_relative_to(Path(sentiment_run.tool_info["dagster_home"]) / "artifacts")
    assert sentiment_run.tool_info["champion"]["model_dir"] == str(model)


def test_evidence(sentiment_run: RunResult) -> None:
    assert all(adapter.evidence(sentiment_run).values())
