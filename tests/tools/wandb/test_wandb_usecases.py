"""Every model of the digits use case and the sentiment use case (``--smoke``) as W&B runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.wandb import adapter, readback
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentiment_run(make_request: Callable[..., RunRequest]) -> RunResult:
    return adapter.run(make_request("sentiment-smoke", SentimentConfig(smoke=True), "sentiment"))


def test_sentiment_smoke_matches_plain(sentiment_run: RunResult) -> None:
    """The tiny offline DistilBERT scores what the plain baseline scores on the fixture."""
    assert sentiment_run.status == "ok", sentiment_run.error
    assert sentiment_run.metrics["accuracy"] == pytest.approx(0.91, abs=1e-9)
    assert set(sentiment_run.timings) >= {"data", "model", "evaluate", "wandb_overhead"}
    epochs = SentimentConfig(smoke=True).epochs
    assert [h["epoch"] for h in sentiment_run.history] == list(range(1, epochs + 1))
    assert sentiment_run.tool_info["inference"]["precision_used"] == "fp32"
    assert sentiment_run.tool_info["promoted"] is True


def test_sentiment_evidence(sentiment_run: RunResult) -> None:
    assert all(adapter.evidence(sentiment_run).values())
    back = readback.read_run(sentiment_run.tool_info["run_folder"])
    assert back.summary["per_class"]["nrows"] == 2  # negative, positive
    assert back.overview["project"] == "mlopsbench-sentiment"


@pytest.mark.parametrize("model", ["deep", "cnn"])
def test_every_digits_model(model: str, make_request: Callable[..., RunRequest]) -> None:
    """The ``model`` setting picks the architecture; its weights become the model artifact."""
    small = DigitsDataConfig(test_fraction=0.1, limit_train=300)
    cfg = DigitsConfig(model=model, epochs=1, threshold=0.0, data=small)
    result = adapter.run(make_request(f"digits-{model}", cfg))
    assert result.status == "ok", result.error
    assert result.model == model and result.params["model"] == model
    back = readback.read_run(result.tool_info["run_folder"])
    assert back.artifact("model")["name"] == f"digits-{model}"
    assert back.artifact("model")["metadata"]["model_name"] == model
    assert all(adapter.evidence(result).values())
