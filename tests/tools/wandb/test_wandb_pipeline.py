"""The copyable W&B pipeline (``pipeline/``): no harness plumbing, no use-case branching, its
parameters made from the core's configs, nothing that shadows ``wandb``, and the script runs on
its own like a user's."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.wandb import adapter, readback
from mlopsbench.tools.wandb.pipeline import train as pipeline
from mlopsbench.usecases.arguments import parse_usecase_args
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.registry import all_usecases
from mlopsbench.usecases.sentiment.config import SentimentConfig

HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter|time\.time"
)
REPO = Path(__file__).resolve().parents[3]


def _pipeline_files() -> list[Path]:
    files = get_tool("wandb").pipeline_files()
    assert {f.name for f in files} == {"__init__.py", "train.py", "sweep.py"}
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
    for path in _pipeline_files():
        named = {w for w in _code_words(path) if any(n in w.lower() for n in names)}
        assert not named, f"{path.name} names a use case: {sorted(named)}"


def test_nothing_shadows_the_wandb_library() -> None:
    """The tool package shares the library's name: nothing in it or in this test folder may be
    found as ``wandb``; ``import wandb`` in the adapter and the pipeline is the library."""
    import wandb

    tool_folder = get_tool("wandb").folder
    assert not list(tool_folder.rglob("wandb.py"))
    assert not (Path(__file__).parent / "__init__.py").exists()
    assert Path(wandb.__file__).parent.parent.name == "site-packages"
    assert pipeline.wandb is wandb and hasattr(wandb, "init")


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


def test_a_core_default_change_reaches_the_script_and_the_run_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Change defaults in the core configs only: the script's options and the config it gives
    ``wandb.init`` follow, with no edit of the tool's files."""
    epochs = DigitsConfig().epochs + 7
    max_length = SentimentConfig().max_length // 2
    _patch_default(monkeypatch, DigitsConfig, "epochs", epochs)
    _patch_default(monkeypatch, SentimentConfig, "max_length", max_length)
    assert DigitsConfig().epochs == epochs  # the patch is what an edit of the core would do

    _, cfg, _ = parse_usecase_args(pipeline.argument_parser(), ["digits"])
    assert cfg.epochs == epochs and flat_values(cfg)["epochs"] == epochs  # wandb.init's config
    _, cfg, _ = parse_usecase_args(pipeline.argument_parser(), ["sentiment", "--smoke"])
    assert flat_values(cfg)["max_length"] == max_length
    with pytest.raises(SystemExit):
        pipeline.argument_parser().parse_args(["digits", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "Training epochs." in shown  # the core's help text
    for spec in pipeline.get_usecase("digits").params():
        assert spec.cli_flag in shown, spec.name


@pytest.mark.parametrize(
    "cfg",
    [
        DigitsConfig(model="deep", epochs=2),
        SentimentConfig(smoke=True, sample_size=40, fine_tune_epochs=3),
    ],
)
def test_the_run_config_rebuilds_the_core_config(cfg: object) -> None:
    """``wandb.init(config=flat_values(cfg))`` then ``case.config(dict(run.config))``: the
    round trip the script makes gives the same config back (None settings included)."""
    case = pipeline.get_usecase("digits" if isinstance(cfg, DigitsConfig) else "sentiment")
    assert case.config(dict(flat_values(cfg))) == cfg


def test_script_environment_is_offline_and_local(tmp_path: Path) -> None:
    env = adapter.wandb_env(tmp_path)
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path)
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        assert Path(env[name]).is_relative_to(tmp_path), name
    assert "WANDB_API_KEY" not in env and "WANDB_API_KEY" in adapter.UNSET_VARIABLES


@pytest.mark.slow
def test_the_script_runs_on_its_own(tmp_path: Path) -> None:
    """``python -m …pipeline.train digits …`` as a user runs it, offline; read back with
    ``wandb leet inspect``."""
    env = {**os.environ, **adapter.wandb_env(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlopsbench.tools.wandb.pipeline.train",
            "digits",
            *("--model", "simple", "--epochs", "1", "--threshold", "0.5"),
            *("--data-test-fraction", "0.1", "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "champion" in done.stdout
    folder = readback.find_run_folder(tmp_path)
    assert folder is not None
    back = readback.read_run(folder)
    assert back.state == "finished" and back.exit_code == 0
    assert back.config["epochs"] == 1 and back.config["data_test_fraction"] == 0.1
    assert "champion" in back.artifact("model")["aliases"]
    assert back.artifact("dataset")["metadata"]["n_test"] == 180
