"""The sentiment flow with the offline smoke model: plain's accuracy, everything read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.tools.prefect import adapter
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(make_request: Callable[..., RunRequest]) -> RunResult:
    return adapter.run(make_request("sentiment-smoke", SentimentConfig(smoke=True), "sentiment"))


def test_smoke_run_matches_plain(smoke_run: RunResult) -> None:
    assert smoke_run.status == "ok", smoke_run.error
    assert smoke_run.model == "tiny-distilbert"
    assert smoke_run.metrics["accuracy"] == pytest.approx(0.91)  # what plain gives (README)
    assert smoke_run.params["smoke"] is True and smoke_run.params["source"] is None
    for key in ("data", "model", "evaluate", "prefect_overhead"):
        assert smoke_run.timings[key] > 0, key
    assert "train" not in smoke_run.timings  # sentiment's model stage is "model"
    info = smoke_run.tool_info
    assert info["promoted"] is True and "sentiment-tiny-distilbert" in info["artifact_keys"]
    assert info["inference"]["precision_used"] == "fp32"
    # The model trained here lives with the flow run's files.
    model_dir = Path(smoke_run.artifacts["model"])
    assert model_dir.is_relative_to(Path(info["files"])) and any(model_dir.glob("*.safetensors"))


def test_smoke_evidence(smoke_run: RunResult) -> None:
    assert adapter.evidence(smoke_run) == dict.fromkeys(EVIDENCE_KEYS, True)
