"""SentimentFlow --smoke: a step fails, the run is resumed without retraining the model.

The failure comes from the test alone: a ``sitecustomize`` on PYTHONPATH makes the core's
``evaluate_model`` raise in the step processes; the flow files know nothing about it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.metaflow import adapter, readback
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow

FAIL_STAGE_ENV = "MLOPSBENCH_TEST_FAIL_STAGE"  # read by the conftest's sitecustomize


def _open_run(result: RunResult):  # type: ignore[no-untyped-def]
    return readback.open_run(result.tool_info["pathspec"], Path(result.tool_info["run_dir"]))


@pytest.mark.capability("metaflow", "resume_cache")
def test_failed_evaluate_then_resume_without_retraining(
    make_request: Callable[..., RunRequest],
    fail_stage: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = make_request(
        "sentiment-resume",
        # Short: 3 epochs for the tiny model, 40 test reviews; a gate of 0 always passes.
        SentimentConfig(smoke=True, fine_tune_epochs=3, sample_size=40, threshold=0.0),
        usecase="sentiment",
    )
    fail_stage("mlopsbench.usecases.sentiment.stages:evaluate_model")
    failed = adapter.run(failing)

    # The failure: one line naming the step, the run marked failed in Metaflow's store.
    assert failed.status == "failed"
    assert failed.error is not None and "\n" not in failed.error
    assert "failed in step evaluate: RuntimeError: injected failure in evaluate_model" in (
        failed.error
    )
    assert failed.metrics == {} and "card" not in failed.artifacts
    assert failed.timings["model"] > 0 and "evaluate" not in failed.timings
    with readback.client_scope(Path(failed.tool_info["run_dir"])):
        run = _open_run(failed)
        assert not run.successful
        assert run["load_model"].task.successful
        evaluate = run["evaluate"].task
        assert not evaluate.successful
        assert "injected failure" in evaluate.exception.exception
    assert adapter.evidence(failed)["run_state"] is False
    resume_command = failed.tool_info["resume_command"]  # a failed step: resumable
    assert f"resume --origin-run-id {failed.tool_info['run_id']}" in resume_command

    # The resume (without the fault): the trained model is cloned, evaluate and end run.
    monkeypatch.delenv(FAIL_STAGE_ENV)
    resumed = adapter.resume(failing, failed.tool_info["run_id"])
    assert resumed.status == "ok", resumed.error
    assert resumed.model == "tiny-distilbert"
    assert 0.0 <= resumed.metrics["accuracy"] <= 1.0
    assert resumed.tool_info["dataset"]["n_test"] == 40
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.tool_info["origin_run"] == failed.tool_info["pathspec"]
    assert "resume_command" not in resumed.tool_info  # nothing left to resume
    assert resumed.tool_info["cloned_steps"] == ["start", "load_data", "load_model"]
    assert "model" not in resumed.timings and resumed.timings["evaluate"] > 0
    run_dir = Path(resumed.tool_info["run_dir"])
    new_id = resumed.tool_info["run_id"]
    assert not (run_dir / "steps" / new_id / "load_model").exists()  # no retraining
    assert (run_dir / "steps" / new_id / "evaluate" / "metrics.json").is_file()
    with readback.client_scope(run_dir):
        old, new = _open_run(failed), _open_run(resumed)
        assert new["load_model"].task.origin_pathspec == old["load_model"].task.pathspec
        files = new["load_model"].task["model_files"].data
        assert files == old["load_model"].task["model_files"].data
        assert "model.safetensors" in files and "config.json" in files
        inference = new["evaluate"].task["evaluation"].data["inference"]
        assert inference["batch_size"] == SentimentConfig().batch_size == 8
        # The resumed run times only what it ran: evaluate's own seconds, from its artifact.
        evaluation = new["evaluate"].task["evaluation"].data
        assert resumed.timings["evaluate"] == evaluation["seconds"]

    # The resumed run is complete: card with plots, evidence in Metaflow's store.
    html = Path(resumed.artifacts["card"]).read_text()
    assert {"Confusion matrix", "Training curve"} <= set(readback.card_images(html))
    assert adapter.evidence(resumed) == {
        "params": True,
        "per_epoch_metrics": True,
        "final_metrics": True,
        "model_artifact": True,
        "plots": True,
        "lineage": True,
        "run_state": True,
    }
