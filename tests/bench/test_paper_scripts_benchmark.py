"""The runner of the paper's own scripts: checkout handling, patches, measurement, refusals.

No script of the paper is used here: the tests write small stand-ins with the lines the patches
look for. Running the real comparison is a benchmark (see README), not a test.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "paper_scripts.py"

MAIN = """import mlflow, time
mlflow.set_tracking_uri("http://10.0.0.1:5000")
num_epochs = 5
model = DeepNN()
with run:
    result = client.create_model_version(
        name="MNIST-Classifier",
        source=mlflow.get_artifact_uri("mnist_model"),
    )
    import time
    time.sleep(10)
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_scripts_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_mlflow_main_patches_are_the_listed_ones(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    patches = bench.scripts_for("digits-mlflow", "cnn", 5, "sqlite:////tmp/x/mlflow.db")
    text = bench.apply_patches("MLflow/mlflowMain.py", MAIN, patches["MLflow/mlflowMain.py"], True)
    assert 'mlflow.set_tracking_uri("sqlite:////tmp/x/mlflow.db")' in text
    assert "source=mlflow.last_logged_model().model_uri" in text
    assert "model = CNN_Model()" in text and "time.sleep(10)" not in text.replace("# time", "")
    assert "num_epochs = 5" in text  # the paper's own epochs: not patched
    compile(text, "mlflowMain.py", "exec")  # still valid Python
    printed = capsys.readouterr().out
    assert printed.count("  patch MLflow/mlflowMain.py: ") == 4
    assert "'model = DeepNN()' -> 'model = CNN_Model()'" in printed
    # Another number of epochs, and DeepNN (the script's own model): one patch more, one less.
    patches = bench.scripts_for("digits-mlflow", "deep", 1, "sqlite:///db")
    text = bench.apply_patches("main", MAIN, patches["MLflow/mlflowMain.py"], False)
    assert "num_epochs = 1" in text and "model = DeepNN()" in text


def test_a_script_that_does_not_match_is_refused(bench: ModuleType) -> None:
    patches = bench.scripts_for("digits-mlflow", "deep", 5, "sqlite:///db")
    with pytest.raises(SystemExit, match="is this the paper's version"):
        bench.apply_patches("main", "print('hello')\n", patches["MLflow/mlflowMain.py"], False)


def test_checkouts_bare_clones_and_missing_ones(bench: ModuleType, tmp_path: Path) -> None:
    tree = tmp_path / "MLOps"
    (tree / "MLflow").mkdir(parents=True)
    (tree / "MLflow" / "mlflowMain.py").write_text(MAIN)
    repo = bench.paper_repo(tree, tmp_path / "work")
    assert not repo.bare and repo.read("MLflow/mlflowMain.py") == MAIN
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(tree), str(bare)], check=True)
    repo = bench.paper_repo(bare, tmp_path / "work")
    assert repo.bare and repo.read("MLflow/mlflowMain.py") == MAIN and len(repo.commit()) == 40
    with pytest.raises(SystemExit, match="does not exist"):
        bench.paper_repo(tmp_path / "nowhere", tmp_path / "work")


def test_the_scratch_folder_must_be_outside_the_repository(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="inside the repository"):
        bench.main(["--work", str(bench.REPO / "paper-runs"), "--paper-repo", "/nonexistent"])


def test_one_step_is_measured_as_a_process_tree(bench: ModuleType, tmp_path: Path) -> None:
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'x = bytearray(50_000_000)'])"
    code = f"{child}; print('Accuracy on IMDB subset: 85.00%')"
    measure, text = bench.run_step(
        [sys.executable, "-c", code], tmp_path, {"PATH": "/usr/bin:/bin"}, tmp_path / "log"
    )
    assert measure.ok and measure.wall_s > 0 and measure.cpu_s > 0
    assert measure.peak_mb > 50  # the grandchild's 50 MB count
    assert bench.paper_accuracy(text) == pytest.approx(0.85)
    failed, _ = bench.run_step(
        [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, {}, tmp_path / "log2"
    )
    assert not failed.ok and "exit 3" in failed.note
    gate, _ = bench.run_step(
        [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, {}, tmp_path / "l3", (0, 3)
    )
    assert gate.ok


def test_paper_accuracy_lines(bench: ModuleType) -> None:
    assert bench.paper_accuracy("🔍 Precisión en test: 97.25%\n") == pytest.approx(0.9725)
    assert bench.paper_accuracy("2026 [1/predict/3 (pid 5)] Accuracy: 88.40%") == pytest.approx(
        0.884
    )
    assert bench.paper_accuracy("nothing") is None


def test_our_side_truncates_as_the_paper_does_in_each_scenario(bench: ModuleType) -> None:
    """The paper's Metaflow flow cuts reviews to 512 characters, its MLflow scripts to 512
    tokens: our runs (and their fp32 reference) use the same truncation."""
    assert bench.truncation_of("sentiment-metaflow") == "chars"
    assert bench.truncation_of("sentiment-mlflow") == "tokens"
