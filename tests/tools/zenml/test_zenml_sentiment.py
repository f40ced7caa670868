"""The sentiment pipeline end to end with the offline smoke model."""

from __future__ import annotations

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunResult
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow


def test_smoke_run_record(sentiment_run: RunResult) -> None:
    assert sentiment_run.status == "ok", sentiment_run.error
    assert sentiment_run.model == "tiny-distilbert"
    assert sentiment_run.params == SentimentConfig(smoke=True).to_dict()
    assert sentiment_run.metrics["accuracy"] == pytest.approx(0.91)  # as plain
    assert [row["epoch"] for row in sentiment_run.history] == list(range(1, 11))
    for key in ("data", "model", "evaluate", "zenml_overhead"):
        assert sentiment_run.timings[key] > 0, key
    assert sentiment_run.tool_info["inference"]["precision_used"] == "fp32"
    assert sorted(sentiment_run.tool_info["steps"]) == sorted(
        ["load_data", "load_model", "evaluate_model", "promote_if_accurate"]
    )


def test_model_version_promoted(sentiment_run: RunResult) -> None:
    version = sentiment_run.tool_info["model_version"]
    assert (version["model"], version["stage"]) == ("sentiment-tiny-distilbert", "production")


def test_evidence_is_read_back_from_zenml(sentiment_run: RunResult) -> None:
    from mlopsbench.tools.zenml import adapter

    assert adapter.evidence(sentiment_run) == dict.fromkeys(EVIDENCE_KEYS, True)
