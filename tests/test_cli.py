"""The command line through typer's CliRunner: help, tools, one-line errors, a real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.toolkit.registry import tool_names

TOOL_NAMES = tool_names()

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One thread: on shared cores OpenMP's spinning threads are ~10x slower (speed not tested)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def results_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("result.json"))


def test_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "tools"):
        assert command in result.stdout
    sub = runner.invoke(app, ["run", "digits", "--help"])
    assert sub.exit_code == 0
    for option in ("--tool", "--model", "--epochs", "--data", "--data-path", "--precision"):
        assert option in sub.stdout


def test_tools_lists_every_tool() -> None:
    result = runner.invoke(app, ["tools"])
    assert result.exit_code == 0
    assert {"plain", "mlflow", "metaflow", "airflow", "kfp"} <= set(TOOL_NAMES)
    for name in TOOL_NAMES:
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "resnet"], 2, "unknown model 'resnet'"),
        (["--tool", "jenkins"], 2, "unknown tool 'jenkins'"),
        (["--data", "kaggle"], 2, "unknown data source 'kaggle'"),
        (["--data", "idx"], 2, "needs a path"),
        (["--precision", "fp8"], 2, "unknown precision"),
        (["--data", "npz", "--data-path", "no/such/file.npz"], 1, "npz data not found"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["run", "digits", "--out", str(tmp_path), *args])
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert results_under(tmp_path) == []  # nothing half-written
    assert not any(tmp_path.iterdir())  # not even an empty run folder


def test_run_digits_plain_end_to_end(tmp_path: Path) -> None:
    """The README's first command: the paper's CNN, defaults (5 epochs), bundled digits."""
    result = runner.invoke(app, ["run", "digits", "--tool", "plain", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (path,) = results_under(tmp_path)
    record = json.loads(path.read_text())
    assert record["tool"] == "plain" and record["model"] == "cnn"
    assert record["params"]["epochs"] == 5 and record["params"]["data_source"] == "sklearn"
    assert record["status"] == "ok" and record["gate"]["passed"]
    assert record["metrics"]["accuracy"] >= 0.90
    assert len(record["history"]) == 5
    for artifact in ("model", "metrics", "confusion_matrix", "tsne", "training_curve"):
        assert Path(record["artifacts"][artifact]).exists()
    assert "ok" in result.stdout and "accuracy" in result.stdout


def test_gate_failure_exits_3_and_keeps_the_record(tmp_path: Path) -> None:
    args = ["run", "digits", "--model", "simple", "--epochs", "1", "--threshold", "0.999"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: quality gate failed: accuracy ") and line.endswith("< 0.9990")
    (path,) = results_under(tmp_path)
    record = json.loads(path.read_text())
    assert record["status"] == "gate_failed" and not record["gate"]["passed"]
