"""Fast checks of the read-back: what an offline run's records mean, and how the reader fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.errors import MlopsbenchError
from mlopsbench.tools.wandb import adapter, readback
from mlopsbench.usecases.registry import get_usecase

GATE = {"metric": "accuracy", "passed": True, "value": 0.9, "threshold": 0.5}


def _offline_run(tmp_path: Path, **overview: Any) -> readback.OfflineRun:
    """A run as ``wandb leet inspect`` describes it: the records a digits run writes."""
    data = {"data_path": "d.npz", "source": "sklearn:load_digits", "digest": "abc", "seconds": 1.5}
    model = {"model_dir": "m", "model_name": "simple", "seconds": 7.0, "precision": "fp32"}
    records = [
        {"type": "run", "run": {"git": {"commit": "c" * 40}, "tags": ["digits"]}},
        {
            "type": "artifact",
            "artifact": {"type": "dataset", "digest": "d1", "metadata": json.dumps(data)},
        },
        {"type": "history", "history": {"item": {"_step": 1, "train_loss": 0.5, "seconds": 1.0}}},
        {"type": "history", "history": {"item": {"_step": 2, "train_loss": 0.25, "seconds": 1.0}}},
        {"type": "artifact", "artifact": {"type": "run_table", "digest": "t"}},
        {
            "type": "artifact",
            "artifact": {"type": "model", "digest": "m1", "metadata": json.dumps(model)},
        },
        {"type": "exit", "exit": {"exit_code": 0}},
    ]
    summary = {
        "accuracy": 0.9,
        "evaluation": {"gate": GATE, "seconds": 2.0},
        "mlflow": {"seconds": 3.0},
    }
    values = {"run_id": "abc", "state": "finished", "exit_code": 0, "summary": summary, **overview}
    return readback.OfflineRun(file=tmp_path / "run-abc.wandb", overview=values, records=records)


def test_records_are_decoded(tmp_path: Path) -> None:
    back = _offline_run(tmp_path)
    assert back.artifact("dataset")["metadata"]["digest"] == "abc"  # JSON text in the log
    assert back.artifact("model")["digest"] == "m1" and back.artifact("nothing") == {}
    assert [row["_step"] for row in back.history] == [1, 2]
    assert back.git_commit == "c" * 40 and back.state == "finished" and back.exit_code == 0
    assert back.files_dir == tmp_path / "files"


def test_timings_come_from_what_the_stages_returned(tmp_path: Path) -> None:
    back = _offline_run(tmp_path)
    timings = adapter.run_timings(get_usecase("digits"), back, launched_s=20.0)
    assert timings == {
        "data": 1.5,
        "train": 7.0,
        "evaluate": 2.0,
        "tracking": 3.0,
        "wandb_overhead": pytest.approx(6.5),
    }


def test_history_is_one_row_per_logged_epoch(tmp_path: Path) -> None:
    assert adapter.history_of(_offline_run(tmp_path)) == [
        {"epoch": 1, "train_loss": 0.5, "seconds": 1.0},
        {"epoch": 2, "train_loss": 0.25, "seconds": 1.0},
    ]


def test_final_metrics_are_the_summary_numbers_no_step_logged(tmp_path: Path) -> None:
    """``train_loss`` and ``seconds`` are in the summary too (their last step's value), and
    ``_runtime`` is wandb's: only the evaluation's scores are final metrics."""
    back = _offline_run(tmp_path)
    summary = {**back.summary, "train_loss": 0.25, "seconds": 1.0, "_runtime": 9, "flag": True}
    back = readback.OfflineRun(back.file, {**back.overview, "summary": summary}, back.records)
    assert adapter.final_metrics(back) == {"accuracy": 0.9}


def test_unfinished_states(tmp_path: Path) -> None:
    assert _offline_run(tmp_path, state="failed", exit_code=1).exit_code == 1
    assert _offline_run(tmp_path, exit_code=None).exit_code is None


def test_find_run_folder(tmp_path: Path) -> None:
    assert readback.find_run_folder(tmp_path) is None
    for name in ("offline-run-20260101_000000-aaa", "offline-run-20260101_000001-bbb"):
        (tmp_path / "wandb" / name).mkdir(parents=True)
        (tmp_path / "wandb" / name / f"run-{name[-3:]}.wandb").write_bytes(b"")
    (tmp_path / "wandb" / "offline-run-20260101_000002-ccc").mkdir()  # no log: not a run
    assert readback.find_run_folder(tmp_path).name.endswith("bbb")  # type: ignore[union-attr]
    assert readback.find_run_folder(tmp_path, "aaa").name.endswith("aaa")  # type: ignore[union-attr]
    assert readback.find_run_folder(tmp_path, "zzz") is None


def test_a_folder_without_a_log_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MlopsbenchError, match=r"no \.wandb file"):
        readback.read_run(tmp_path)


def test_the_reader_refuses_a_damaged_log_in_one_line(tmp_path: Path) -> None:
    """A log that is not W&B's: wandb's reader says so; we pass its last line on."""
    (tmp_path / "run-bad.wandb").write_bytes(b"not a wandb transaction log" * 10)
    with pytest.raises(MlopsbenchError, match="wandb leet inspect could not read") as raised:
        readback.read_run(tmp_path)
    assert "\n" not in str(raised.value)
