"""The fault catalogue: bad inputs and faults a new user meets, each run through the real CLI.

One case per fault, in a fresh folder, as a separate ``python -m mlopsbench`` process (what a
user types). Every case checks the same contract:

* the exit code (2 for a bad option, 1 for bad data or an unreachable service, 0 where the
  input is valid and the run must finish with its record);
* the one line the user reads on stderr (a substring of it);
* no traceback, anywhere in the output;
* nothing half-written: no empty run folder and no temporary file is left behind, and a
  failed run writes no ``result.json`` unless the failure is the run's recorded outcome.

Cases marked ``slow`` start a tool (Metaflow, KFP, Airflow, MLflow) or train a model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

Setup = Callable[[Path], None]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEAD_URI = f"http://127.0.0.1:{_closed_port()}"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    stderr: str  # a substring of what the user reads on stderr
    setup: Setup | None = None
    env: dict[str, str | None] = field(default_factory=dict)  # None removes a variable
    slow: bool = False
    result_json: bool = False  # the run is valid: it must end with its record
    timeout_s: float = 120.0
    check: Callable[[Path], None] | None = None  # extra assertions on the folder


# --------------------------------------------------------------------------------------------
# inputs the cases need, written into the case's own folder
# --------------------------------------------------------------------------------------------


def _digits_npz(
    path: Path, n_train: int = 200, n_test: int = 50, seed: int = 0, **override: object
) -> None:
    rng = np.random.default_rng(seed)
    arrays: dict[str, object] = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test),
    }
    arrays.update(override)
    np.savez(path, **arrays)  # type: ignore[arg-type]


def noise_npz(folder: Path) -> None:
    """Random images with random labels: the issue's input (the CNN's embeddings collapse)."""
    _digits_npz(folder / "noise.npz", n_train=16000, n_test=4000)


def small_npz(folder: Path) -> None:
    _digits_npz(folder / "digits.npz")


def nan_npz(folder: Path) -> None:
    images = np.random.default_rng(0).random((200, 28, 28)).astype(np.float32)
    images[3, 4, 5] = np.nan
    _digits_npz(folder / "nan.npz", x_train=images)


def bad_label_npz(folder: Path) -> None:
    _digits_npz(folder / "labels.npz", y_train=np.full(200, 12))


def missing_key_npz(folder: Path) -> None:
    np.savez(folder / "partial.npz", x_train=np.zeros((10, 28, 28), np.uint8))


def garbage_npz(folder: Path) -> None:
    (folder / "garbage.npz").write_bytes(b"this is not a zip archive")


def list_config_model(folder: Path) -> None:
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text("[1, 2, 3]")


def not_json_config_model(folder: Path) -> None:
    model = folder / "model"
    model.mkdir()
    (model / "config.json").write_text("{not json")


def reviews_without_label(folder: Path) -> None:
    (folder / "reviews.csv").write_text("text\nA fine film.\nDull.\n")


def results_with_torn_middle(folder: Path) -> None:
    """A compare folder whose results.jsonl has a damaged line in the middle."""
    from mlopsbench.bench.results import append_row

    out = folder / "cmp"
    out.mkdir()
    rows = _minimal_rows()
    path = out / "results.jsonl"
    append_row(path, rows[0])
    with path.open("a") as fh:
        fh.write('{"kind": "run", "tool": "pla\n')  # damaged, not the last line
    for row in rows[1:]:
        append_row(path, row)


def results_empty(folder: Path) -> None:
    (folder / "cmp").mkdir()
    (folder / "cmp" / "results.jsonl").write_text("")


def non_empty_out(folder: Path) -> None:
    (folder / "used").mkdir()
    (folder / "used" / "keep.txt").write_text("mine")


def a_file(folder: Path) -> None:
    (folder / "taken").write_text("a file where a folder should go")


def _minimal_rows() -> list[dict[str, object]]:
    base = {"usecase": "digits", "config": {}, "tools": ["plain"], "models": ["simple"]}
    run = {
        "kind": "run",
        "id": "plain-simple-r1",
        "tool": "plain",
        "model": "simple",
        "repeat": 1,
        "status": "ok",
        "wall_s": 1.0,
        "cpu_s": 1.0,
        "peak_rss_mb": 100.0,
        "result": {"metrics": {"accuracy": 0.9}, "timings": {}, "status": "ok"},
    }
    return [{"kind": "meta", **base}, run, {**run, "repeat": 2, "id": "plain-simple-r2"}]


# --------------------------------------------------------------------------------------------
# extra checks
# --------------------------------------------------------------------------------------------


def no_pipeline_root(folder: Path) -> None:
    assert not list(folder.rglob("pipeline_root")), "KFP left a pipeline_root behind"


def no_compare_folder(folder: Path) -> None:
    assert not (folder / "runs").exists(), "compare created its folder before validating"


def record_has_no_resume_command(folder: Path) -> None:
    (record,) = folder.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["status"] == "gate_failed"
    assert "resume_command" not in result["tool_info"]


def npz_was_used(folder: Path) -> None:
    (record,) = folder.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["params"]["data_source"] == "npz"
    assert result["tool_info"]["dataset"]["source"].startswith("npz")


def gate_failure_recorded(folder: Path) -> None:
    """A model below its gate: the run's record says so, and nothing was promoted."""
    (record,) = folder.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["status"] == "gate_failed" and result["gate"]["passed"] is False
    info = json.dumps(result["tool_info"])
    assert '"promoted": true' not in info and '"champion_version": "' not in info


def degenerate_run_recorded(folder: Path) -> None:
    (record,) = folder.rglob("result.json")
    result = json.loads(record.read_text())
    assert result["status"] == "ok"  # --threshold 0: the gate passes whatever was learned
    assert 0.0 <= result["metrics"]["accuracy"] <= 0.3  # chance level on random labels


def model_logged_without_mlopsbench(folder: Path) -> None:
    """The registered model names no mlopsbench loader: it loads where mlopsbench is absent."""
    mlmodels = list(folder.rglob("MLmodel"))
    assert mlmodels, "no model was logged"
    for mlmodel in mlmodels:
        text = mlmodel.read_text()
        assert "loader_module: mlopsbench" not in text
        assert not list(mlmodel.parent.rglob("*.pkl")), "a pickled model was logged"


# --------------------------------------------------------------------------------------------
# the catalogue
# --------------------------------------------------------------------------------------------

RUN_DIGITS = ("run", "digits")
RUN_SENTIMENT = ("run", "sentiment")
NO_METAFLOW_USER: dict[str, str | None] = {
    "METAFLOW_USER": None,
    "USER": "root",
    "LOGNAME": "root",
    "USERNAME": None,
    "SUDO_USER": None,
}

CASES = [
    # --- issue 13: the items that slipped through -------------------------------------------
    Case(
        "13.1-collapsed-model-finishes-with-its-record",
        (*RUN_DIGITS, "--model", "simple", "--epochs", "2", "--lr", "1e12", "--threshold", "0"),
        0,
        "t-SNE skipped: embeddings are constant",
        result_json=True,
        check=degenerate_run_recorded,
    ),
    Case(
        "13.1-diverged-model-finishes-with-its-record",
        (*RUN_DIGITS, "--model", "cnn", "--epochs", "1", "--lr", "1e38", "--threshold", "0"),
        0,
        "t-SNE skipped: embeddings are non-finite",
        result_json=True,
        check=degenerate_run_recorded,
    ),
    Case(
        "13.1-noise-images-the-issue-reported",
        (
            *RUN_DIGITS,
            "--model",
            "cnn",
            "--epochs",
            "1",
            "--threshold",
            "0",
            "--data",
            "npz",
            "--data-path",
            "noise.npz",
        ),
        0,
        "t-SNE skipped",
        setup=noise_npz,
        slow=True,
        result_json=True,
        timeout_s=600,
        check=degenerate_run_recorded,
    ),
    Case(
        "13.3-logged-model-names-no-mlopsbench-loader",
        (*RUN_DIGITS, "--tool", "mlflow", "--model", "simple", "--epochs", "1", "--threshold", "0"),
        0,
        "",
        slow=True,
        result_json=True,
        timeout_s=300,
        check=model_logged_without_mlopsbench,
    ),
    Case(
        "13.4-compare-repeats-0-leaves-no-folder",
        ("compare", "--repeats", "0"),
        2,
        "--repeats must be >= 1",
        check=no_compare_folder,
    ),
    Case(
        "13.4-compare-timeout-0-leaves-no-folder",
        ("compare", "--timeout", "0"),
        2,
        "--timeout must be > 0",
        check=no_compare_folder,
    ),
    Case(
        "13.5-nan-pixel-rejected",
        (*RUN_DIGITS, "--data", "npz", "--data-path", "nan.npz"),
        1,
        "non-finite",
        setup=nan_npz,
    ),
    Case(
        "13.6-data-path-with-sklearn-refused",
        (*RUN_DIGITS, "--data", "sklearn", "--data-path", "digits.npz"),
        2,
        "take no data path",
        setup=small_npz,
    ),
    Case(
        "13.6-data-path-alone-is-told-from-the-path",
        (
            *RUN_DIGITS,
            "--model",
            "simple",
            "--epochs",
            "1",
            "--threshold",
            "0",
            "--data-path",
            "digits.npz",
        ),
        0,
        "",
        setup=small_npz,
        result_json=True,
        check=npz_was_used,
    ),
    Case(
        "13.6-data-path-of-unknown-kind-refused",
        (*RUN_DIGITS, "--data-path", "."),
        2,
        "cannot tell which data source",
    ),
    Case(
        "13.6-sentiment-hf-with-a-path-refused",
        (*RUN_SENTIMENT, "--data", "hf", "--data-path", "reviews.csv"),
        2,
        "reads no --data-path",
        setup=reviews_without_label,
    ),
    Case(
        "13.7-config-json-not-an-object",
        (*RUN_SENTIMENT, "--model-path", "model", "--data", "fixture"),
        1,
        "config.json",
        setup=list_config_model,
    ),
    Case(
        "13.8-malformed-ipv6-tracking-uri",
        (*RUN_DIGITS, "--tool", "mlflow", "--tracking-uri", "http://[::1"),
        2,
        "http://[::1",
    ),
    Case(
        "13.9-kfp-missing-npz-leaves-no-pipeline-root",
        (*RUN_DIGITS, "--tool", "kfp", "--data", "npz", "--data-path", "missing.npz"),
        1,
        "missing.npz",
        slow=True,
        check=no_pipeline_root,
    ),
    Case(
        "13.10-report-warns-about-a-damaged-middle-line",
        ("report", "cmp"),
        0,
        "unreadable line(s): 2",
        setup=results_with_torn_middle,
    ),
    Case("13.11-server-mlflow-port-too-high", ("server", "mlflow", "--port", "70000"), 2, "65535"),
    Case("13.11-server-mlflow-port-negative", ("server", "mlflow", "--port", "-1"), 2, "65535"),
    Case(
        "13.11-server-airflow-port-too-high", ("server", "airflow", "--port", "70000"), 2, "65535"
    ),
    Case(
        "13.11-serve-mlflow-port-too-high",
        ("serve", "mlflow", "--model", "digits-cnn@champion", "--port", "70000"),
        2,
        "65535",
    ),
    Case(
        "13.12-metaflow-run-as-root-picks-a-user",
        (
            *RUN_DIGITS,
            "--tool",
            "metaflow",
            "--model",
            "simple",
            "--epochs",
            "1",
            "--threshold",
            "0",
        ),
        0,
        "METAFLOW_USER",
        env=NO_METAFLOW_USER,
        slow=True,
        result_json=True,
        timeout_s=300,
    ),
    Case(
        "13.13-metaflow-gate-failure-has-no-resume-command",
        (
            *RUN_DIGITS,
            "--tool",
            "metaflow",
            "--model",
            "simple",
            "--epochs",
            "1",
            "--threshold",
            "1.0",
        ),
        3,
        "quality gate",
        slow=True,
        result_json=True,
        timeout_s=300,
        check=record_has_no_resume_command,
    ),
    Case(
        "13.14-metaflow-unreachable-tracking-uri-fails-first",
        (*RUN_DIGITS, "--tool", "metaflow", "--tracking-uri", DEAD_URI),
        1,
        "unreachable",
        timeout_s=30,
    ),
    Case(
        "13.14-kfp-unreachable-tracking-uri-fails-first",
        (*RUN_DIGITS, "--tool", "kfp", "--tracking-uri", DEAD_URI),
        1,
        "unreachable",
        timeout_s=30,
    ),
    Case(
        "13.14-airflow-unreachable-tracking-uri-fails-first",
        (*RUN_DIGITS, "--tool", "airflow", "--tracking-uri", DEAD_URI),
        1,
        "unreachable",
        timeout_s=30,
    ),
    # --- issue 16: the tools added beside the paper's four ----------------------------------
    *(
        Case(
            f"16-{tool}-unreachable-tracking-uri-fails-first",
            (*RUN_DIGITS, "--tool", tool, "--tracking-uri", DEAD_URI),
            1,
            "unreachable",
            timeout_s=60,
        )
        for tool in ("prefect", "dagster", "zenml", "dvc", "wandb")
    ),
    *(
        Case(f"16-server-{tool}-port-too-high", ("server", tool, "--port", "70000"), 2, "65535")
        for tool in ("prefect", "dagster", "zenml")
    ),
    *(
        Case(
            f"16-{tool}-missing-npz-leaves-no-folder",
            (*RUN_DIGITS, "--tool", tool, "--data", "npz", "--data-path", "missing.npz"),
            1,
            "missing.npz",
            timeout_s=60,
        )
        for tool in ("prefect", "dagster", "zenml", "dvc", "wandb")
    ),
    *(
        Case(
            f"16-{tool}-gate-failure-promotes-nothing",
            (
                *RUN_DIGITS,
                "--tool",
                tool,
                "--model",
                "simple",
                "--epochs",
                "1",
                "--threshold",
                "1.0",
            ),
            3,
            "quality gate",
            slow=True,
            result_json=True,
            timeout_s=600,
            check=gate_failure_recorded,
        )
        for tool in ("prefect", "dagster", "zenml", "dvc", "wandb")
    ),
    Case("16-zenml-server-without-a-run", ("server", "zenml"), 2, "no ZenML run under runs/"),
    Case(
        "16-prefect-unreachable-api-url-fails-first",
        (*RUN_DIGITS, "--tool", "prefect"),
        1,
        "Prefect API",
        env={"PREFECT_API_URL": DEAD_URI + "/api"},
        timeout_s=60,
    ),
    # --- what already held: digits options ---------------------------------------------------
    Case("digits-unknown-model", (*RUN_DIGITS, "--model", "resnet"), 2, "unknown model"),
    Case("digits-zero-epochs", (*RUN_DIGITS, "--epochs", "0"), 2, "epochs must be >= 1"),
    Case("digits-zero-lr", (*RUN_DIGITS, "--lr", "0"), 2, "lr must be > 0"),
    Case("digits-zero-batch", (*RUN_DIGITS, "--batch-size", "0"), 2, "batch_size must be >= 1"),
    Case("digits-threshold-above-1", (*RUN_DIGITS, "--threshold", "1.5"), 2, "threshold"),
    Case("digits-unknown-precision", (*RUN_DIGITS, "--precision", "fp8"), 2, "unknown precision"),
    Case("digits-unknown-device", (*RUN_DIGITS, "--device", "tpu"), 2, "unknown device"),
    Case("digits-unknown-source", (*RUN_DIGITS, "--data", "kaggle"), 2, "unknown data source"),
    Case("digits-npz-without-path", (*RUN_DIGITS, "--data", "npz"), 2, "needs a path"),
    Case(
        "digits-missing-npz",
        (*RUN_DIGITS, "--data", "npz", "--data-path", "missing.npz"),
        1,
        "npz data not found: missing.npz",
    ),
    Case(
        "digits-missing-idx-folder",
        (*RUN_DIGITS, "--data", "idx", "--data-path", "no-such-folder"),
        1,
        "not found",
    ),
    Case(
        "digits-npz-labels-out-of-range",
        (*RUN_DIGITS, "--data", "npz", "--data-path", "labels.npz"),
        1,
        "labels must be digits 0..9",
        setup=bad_label_npz,
    ),
    Case(
        "digits-npz-missing-arrays",
        (*RUN_DIGITS, "--data", "npz", "--data-path", "partial.npz"),
        1,
        "partial.npz",
        setup=missing_key_npz,
    ),
    Case(
        "digits-npz-not-a-zip",
        (*RUN_DIGITS, "--data", "npz", "--data-path", "garbage.npz"),
        1,
        "garbage.npz",
        setup=garbage_npz,
    ),
    Case("digits-unknown-tool", (*RUN_DIGITS, "--tool", "jenkins"), 2, "unknown tool"),
    Case(
        "digits-unsupported-tracking-scheme",
        (*RUN_DIGITS, "--tool", "mlflow", "--tracking-uri", "ftp://127.0.0.1/x"),
        2,
        "unsupported MLflow tracking URI scheme",
    ),
    Case(
        "digits-mlflow-unreachable-server",
        (*RUN_DIGITS, "--tool", "mlflow", "--tracking-uri", DEAD_URI),
        1,
        "unreachable",
    ),
    Case(
        "digits-out-is-a-file",
        (*RUN_DIGITS, "--out", "taken"),
        1,
        "cannot create output folder",
        setup=a_file,
    ),
    # --- sentiment options ---------------------------------------------------------------
    Case(
        "sentiment-smoke-with-model-path",
        (*RUN_SENTIMENT, "--smoke", "--model-path", "."),
        2,
        "drop --model-path",
    ),
    Case("sentiment-odd-sample", (*RUN_SENTIMENT, "--smoke", "--sample", "3"), 2, "even number"),
    Case(
        "sentiment-max-length-too-small",
        (*RUN_SENTIMENT, "--smoke", "--max-length", "4"),
        2,
        "max_length must be >= 8",
    ),
    Case(
        "sentiment-unknown-truncation",
        (*RUN_SENTIMENT, "--smoke", "--truncation", "words"),
        2,
        "unknown truncation",
    ),
    Case(
        "sentiment-unknown-precision",
        (*RUN_SENTIMENT, "--smoke", "--precision", "int4"),
        2,
        "unknown precision",
    ),
    Case(
        "sentiment-missing-model-folder",
        (*RUN_SENTIMENT, "--model-path", "no-such-model", "--data", "fixture"),
        1,
        "no-such-model",
    ),
    Case(
        "sentiment-config-json-not-json",
        (*RUN_SENTIMENT, "--model-path", "model", "--data", "fixture"),
        1,
        "config.json",
        setup=not_json_config_model,
    ),
    Case(
        "sentiment-aclimdb-without-path",
        (*RUN_SENTIMENT, "--data", "aclimdb"),
        2,
        "needs --data-path",
    ),
    Case(
        "sentiment-file-without-label-column",
        (*RUN_SENTIMENT, "--smoke", "--data", "file", "--data-path", "reviews.csv"),
        1,
        "missing column(s) label",
        setup=reviews_without_label,
    ),
    # --- compare and report --------------------------------------------------------------
    Case("compare-unknown-usecase", ("compare", "poetry"), 2, "unknown use case"),
    Case("compare-unknown-tool", ("compare", "--tools", "plain,jenkins"), 2, "unknown tool"),
    Case("compare-unknown-model", ("compare", "--models", "resnet"), 2, "unknown model"),
    Case("compare-unknown-set-key", ("compare", "--set", "speed=3"), 2, "unknown config key"),
    Case("compare-set-bad-number", ("compare", "--set", "epochs=many"), 2, "--set epochs"),
    Case("compare-set-without-equals", ("compare", "--set", "epochs"), 2, "KEY=VALUE"),
    Case("compare-unknown-profile", ("compare", "--profile", "startup"), 2, "startup"),
    Case("compare-missing-weights", ("compare", "--weights", "none.toml"), 2, "none.toml"),
    Case(
        "compare-out-not-empty",
        ("compare", "--out", "used"),
        2,
        "exists and is not empty",
        setup=non_empty_out,
    ),
    Case("compare-sweep-workers-zero", ("compare", "sweep", "--workers", "0"), 2, ">= 1"),
    Case("compare-sweep-workers-text", ("compare", "sweep", "--workers", "two"), 2, "integers"),
    Case("compare-workers-on-digits", ("compare", "--workers", "2"), 2, "does not apply"),
    Case("compare-models-on-sweep", ("compare", "sweep", "--models", "cnn"), 2, "does not apply"),
    Case(
        "compare-sweep-more-trials-than-points",
        ("compare", "sweep", "--set", "trials=99"),
        2,
        "exceed the 36 distinct points",
    ),
    Case("run-sweep-bad-rates", ("run", "sweep", "--learning-rates", "fast"), 2, "floats"),
    Case("report-missing-folder", ("report", "no-such-folder"), 1, "no results.jsonl"),
    Case("report-empty-results", ("report", "cmp"), 1, "holds no result rows", setup=results_empty),
    # --- servers, serving, KFP -----------------------------------------------------------
    Case(
        "serve-mlflow-bad-model-reference",
        ("serve", "mlflow", "--model", "digits-cnn"),
        2,
        "NAME@ALIAS or NAME/VERSION",
    ),
    Case("kfp-compile-unknown-usecase", ("kfp", "compile", "-u", "poetry"), 2, "unknown use case"),
    Case(
        "kfp-submit-unreachable-host",
        ("kfp", "submit", "--host", DEAD_URI, "--timeout", "2"),
        1,
        "127.0.0.1",
    ),
]


def _params() -> list[object]:
    return [
        pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else [])
        for case in CASES
    ]


def _environment(case: Case, folder: Path) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "MLOPSBENCH_TEST_FOLDER": str(folder)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for key, value in case.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


TOOL_INTERNALS = (".git", ".dvc")  # git and DVC keep empty folders of their own by design


def _leftovers(folder: Path) -> list[Path]:
    """Empty folders and temporary files: what a half-finished run would leave."""
    empty = [
        p
        for p in folder.rglob("*")
        if p.is_dir() and not any(p.iterdir()) and not set(p.parts) & set(TOOL_INTERNALS)
    ]
    temps = [p for p in folder.rglob("*.tmp") if p.is_file()]
    return empty + temps


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    items = {case.id.split("-", 1)[0] for case in CASES if case.id.startswith("13.")}
    assert items >= {f"13.{n}" for n in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)}


@pytest.mark.parametrize("case", _params())
def test_fault(case: Case, tmp_path: Path) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    before = set(tmp_path.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", *case.argv],
        cwd=tmp_path,
        env=_environment(case, tmp_path),
        capture_output=True,
        text=True,
        timeout=case.timeout_s,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == case.code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert case.stderr in done.stderr, done.stderr[-3000:]
    if case.code not in (0, 3):
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, done.stderr  # one line, the user's to read
    records = list(tmp_path.rglob("result.json"))
    assert bool(records) == case.result_json, [str(p) for p in records]
    new = set(tmp_path.rglob("*")) - before
    assert not [p for p in _leftovers(tmp_path) if p in new], _leftovers(tmp_path)
    if case.check is not None:
        case.check(tmp_path)
