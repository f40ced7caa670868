"""The plain baseline: one process, the core's stages, a full result record, honest evidence."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.plain import adapter as plain
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One thread: on shared cores OpenMP's spinning threads are ~10x slower (speed not tested)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    cfg = DigitsConfig(
        model="simple", epochs=2, threshold=0.5, data=DigitsDataConfig(limit_train=400)
    )
    out = tmp_path_factory.mktemp("plain-run")
    return plain.run(RunRequest(usecase="digits", config=cfg, out_dir=out))


def test_result_record(finished: RunResult) -> None:
    assert finished.tool == "plain" and finished.usecase == "digits" and finished.model == "simple"
    assert finished.status == "ok" and finished.error is None
    assert finished.gate is not None and finished.gate["passed"]
    assert set(finished.timings) == {"data", "train", "evaluate"}
    assert finished.wall_time_s >= sum(finished.timings.values()) * 0.99
    assert finished.params == DigitsConfig.from_dict(finished.params).to_dict()
    assert finished.params["epochs"] == 2 and finished.params["data_limit_train"] == 400
    assert [h["epoch"] for h in finished.history] == [1, 2]
    assert finished.metrics["accuracy"] > 0.5 and "f1_7" in finished.metrics
    assert finished.tool_info["dataset"]["n_train"] == 400
    assert len(finished.tool_info["dataset"]["digest"]) == 16
    assert finished.peak_rss_mb > 0 and finished.environment["torch"]
    for name in ("model", "data", "history", "metrics", "evaluation", "embeddings"):
        assert Path(finished.artifacts[name]).exists(), name
    stored = json.loads(Path(finished.artifacts["metrics"]).read_text())
    assert stored["accuracy"] == finished.metrics["accuracy"]
    # The record survives JSON (what the CLI writes and the harness reads).
    again = RunResult.from_dict(json.loads(json.dumps(finished.to_dict())))
    assert again == finished


def test_evidence_is_what_the_files_show(finished: RunResult) -> None:
    found = plain.evidence(finished)
    assert tuple(found) == plain.EVIDENCE_KEYS
    assert found == {
        "params": False,  # no tracking store: nothing the pipeline writes records the config
        "per_epoch_metrics": True,
        "final_metrics": True,
        "model_artifact": True,
        "plots": True,
        "lineage": False,
        "run_state": False,
    }


def test_evidence_notices_missing_or_damaged_files(finished: RunResult, tmp_path: Path) -> None:
    # Work on a copy of the run folder so the module's run stays intact.
    src = Path(finished.artifacts["metrics"]).parent
    copy = tmp_path / "run"
    shutil.copytree(src, copy)
    artifacts = {k: str(copy / Path(v).relative_to(src)) for k, v in finished.artifacts.items()}
    result = RunResult.from_dict({**finished.to_dict(), "artifacts": artifacts})
    assert plain.evidence(result)["final_metrics"]

    Path(artifacts["metrics"]).write_text('{"accuracy": 0.123}')  # disagrees with the record
    (copy / "model" / "model.safetensors").unlink()
    Path(artifacts["history"]).write_text("not json")
    Path(artifacts["confusion_matrix"]).write_bytes(b"")
    found = plain.evidence(result)
    assert not any(found.values())


def test_unknown_usecase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown use case 'audio'"):
        plain.run(RunRequest(usecase="audio", config=None, out_dir=tmp_path))
