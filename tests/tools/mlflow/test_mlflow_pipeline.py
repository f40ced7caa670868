"""The copyable MLflow pipeline (``pipeline/``): no harness plumbing, no use-case branching, its
parameters made from the core's configs, and the script runs on its own like a user's."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.mlflow.pipeline import run_pipeline as pipeline
from mlopsbench.usecases.arguments import parse_usecase_args
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.registry import all_usecases
from mlopsbench.usecases.sentiment.config import SentimentConfig

HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter"
)


def _pipeline_files() -> list[Path]:
    files = get_tool("mlflow").pipeline_files()
    assert {f.name for f in files} == {
        "__init__.py",
        "run_pipeline.py",
        "pyfunc_model.py",
        "sweep.py",
    }
    return files


def test_pipeline_has_no_harness_plumbing() -> None:
    for path in _pipeline_files():
        found = HARNESS_PLUMBING.findall(path.read_text())
        assert not found, f"{path.name}: {found}"


def _code_words(path: Path) -> set[str]:
    """Identifiers and string constants of a file, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                words.add(node.value)
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
    return words


def test_one_pipeline_for_every_use_case() -> None:
    """No use case is named in the pipeline's code: the descriptor answers every difference."""
    names = {case.name for case in all_usecases()}
    # sweep.py is the sweep scenario's own script: its trials' models are digits models
    for path in (p for p in _pipeline_files() if p.name != "sweep.py"):
        named = {w for w in _code_words(path) if any(n in w.lower() for n in names)}
        assert not named, f"{path.name} names a use case: {sorted(named)}"


def _patch_default(
    monkeypatch: pytest.MonkeyPatch, config_class: type, name: str, value: object
) -> None:
    """Change a core default the way an edit of the dataclass would (field + __init__)."""
    monkeypatch.setattr(config_class.__dataclass_fields__[name], "default", value)  # type: ignore[attr-defined]
    init = config_class.__init__  # type: ignore[misc]
    names = list(init.__code__.co_varnames[1 : init.__code__.co_argcount])
    defaults = list(init.__defaults__)
    defaults[names.index(name) - (len(names) - len(defaults))] = value
    monkeypatch.setattr(init, "__defaults__", tuple(defaults))


def test_a_core_default_change_reaches_the_pipelines_parameters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    epochs = DigitsConfig().epochs + 7
    max_length = SentimentConfig().max_length // 2
    _patch_default(monkeypatch, DigitsConfig, "epochs", epochs)
    _patch_default(monkeypatch, SentimentConfig, "max_length", max_length)
    assert DigitsConfig().epochs == epochs  # the patch is what an edit of the core would do

    _, cfg, _ = parse_usecase_args(pipeline.argument_parser(), ["digits"])
    assert cfg.epochs == epochs and cfg.to_dict()["epochs"] == epochs  # what log_params logs
    case, cfg, _ = parse_usecase_args(pipeline.argument_parser(), ["sentiment", "--smoke"])
    assert cfg.max_length == max_length
    assert case.serving.settings_of(cfg)["max_length"] == max_length  # kept by the model
    with pytest.raises(SystemExit):
        pipeline.argument_parser().parse_args(["digits", "--help"])
    assert "Training epochs." in capsys.readouterr().out  # the core's help text


@pytest.mark.slow
def test_the_script_runs_on_its_own(tmp_path: Path) -> None:
    """``python -m …pipeline.run_pipeline digits …`` as a user runs it, on a fresh store."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlopsbench.tools.mlflow.pipeline.run_pipeline",
            "digits",
            *("--model", "simple", "--epochs", "1", "--threshold", "0.5"),
            *("--out", str(tmp_path / "run"), "--tracking-uri", uri),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "digits-simple version 1" in done.stdout and "approved" in done.stdout
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("digits-simple", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "1"
    assert run.data.tags["validation_status"] == "approved"
    assert run.data.metrics["validation_accuracy"] == pytest.approx(run.data.metrics["accuracy"])
    (dataset_input,) = run.inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.profile)["n_test"] == 360
