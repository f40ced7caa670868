"""The digits pipeline as file-level stages: what each tool's step/task/component calls.

Orchestrators run steps in separate processes, so stages hand over through files in a folder
(``data.npz``, ``model/``, ``metrics.json``) and return small JSON-able dicts (paths, metrics):
exactly what XCom, Metaflow artifacts or KFP outputs should carry. The plain runner calls the
same functions in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlopsbench.result import write_json_atomic
from mlopsbench.usecases.common.gate import check_gate
from mlopsbench.usecases.common.plots import EMBEDDINGS_FILE
from mlopsbench.usecases.common.usecase import TestInputs, timed_stage
from mlopsbench.usecases.digits.config import DigitsConfig

DATA_FILE = "data.npz"
MODEL_DIR = "model"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
EVALUATION_FILE = "evaluation.json"


def check_inputs(cfg: DigitsConfig) -> None:
    """Fail with one line when a local input is missing, before any run folder or step exists.

    Cheap checks only (the loaders validate the contents): the data path must exist.
    """
    from mlopsbench.errors import DataError

    path = cfg.data.path
    if path and not Path(path).expanduser().exists():
        raise DataError(f"{cfg.data.source} data not found: {path}")


@timed_stage
def prepare_data(cfg: DigitsConfig, out_dir: str | Path) -> dict[str, Any]:
    """Load the configured source and write it as ``data.npz``; return path + lineage."""
    from mlopsbench.usecases.digits.data import load_digits_data

    data = load_digits_data(cfg.data)
    path = data.save(Path(out_dir) / DATA_FILE)
    return {"data_path": str(path), **data.summary()}


@timed_stage
def train_model(
    cfg: DigitsConfig, data_path: str | Path, out_dir: str | Path, show_progress: bool = False
) -> dict[str, Any]:
    """Train on ``data.npz``, save ``model/`` (safetensors) and ``history.json``."""
    from mlopsbench.usecases.digits.data import DigitsData
    from mlopsbench.usecases.digits.storage import save_model
    from mlopsbench.usecases.digits.train import train

    out_dir = Path(out_dir)
    result = train(cfg, DigitsData.load(data_path), show_progress=show_progress)
    model_dir = save_model(result.model, cfg.model, out_dir / MODEL_DIR)
    history = result.history_dicts()
    write_json_atomic(out_dir / HISTORY_FILE, history)
    return {
        "model_dir": str(model_dir),
        "model_name": cfg.model,
        "history_path": str(out_dir / HISTORY_FILE),
        "history": history,
        "train_seconds": result.seconds,
        "precision": result.precision,
        "device": result.device,
    }


@timed_stage
def evaluate_model(
    cfg: DigitsConfig,
    data_path: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    plots: bool = True,
    history_path: str | Path | None = None,
    predictor: Any = None,
) -> dict[str, Any]:
    """Score the saved model on the test split; write metrics, evaluation and plots.

    ``predictor``: an already loaded serving ``Predictor`` (e.g. the registered version loaded
    back from a model registry) whose model is scored instead of loading ``model_dir`` again:
    one scoring pass is then both the evaluation and the validation.
    """
    import numpy as np

    from mlopsbench.usecases.digits.data import DigitsData
    from mlopsbench.usecases.digits.evaluate import evaluate
    from mlopsbench.usecases.digits.storage import load_model

    out_dir = Path(out_dir)
    model = predictor.model if predictor is not None else load_model(model_dir)
    evaluation = evaluate(model, DigitsData.load(data_path))
    metrics = evaluation.metrics()
    gate = check_gate(evaluation.accuracy, cfg.threshold)
    write_json_atomic(out_dir / METRICS_FILE, metrics)
    write_json_atomic(out_dir / EVALUATION_FILE, evaluation.report.to_dict())
    tmp = out_dir / f".{EMBEDDINGS_FILE}.tmp.npz"  # atomic, like every file a stage writes
    # Uncompressed: float embeddings barely compress and zlib would cost more than the t-SNE.
    np.savez(tmp, embeddings=evaluation.embeddings, labels=evaluation.labels)
    tmp.replace(out_dir / EMBEDDINGS_FILE)
    artifacts = {
        "metrics": str(out_dir / METRICS_FILE),
        "evaluation": str(out_dir / EVALUATION_FILE),
        "embeddings": str(out_dir / EMBEDDINGS_FILE),
    }
    if plots:
        history = history_path or Path(model_dir).parent / HISTORY_FILE
        artifacts.update(make_plots(out_dir, evaluation.report.to_dict(), history_path=history))
    return {
        "metrics": metrics,
        "gate": gate.to_dict(),
        "confusion": evaluation.report.confusion,
        "artifacts": artifacts,
    }


# The use cases' uniform name for the model-building stage (digits: training).
build_model = train_model


def test_inputs(data_path: str | Path) -> TestInputs:
    """The test split as the served model sees it: uint8 images (N, 28, 28) + true digits."""
    import numpy as np

    from mlopsbench.usecases.digits.data import DigitsData
    from mlopsbench.usecases.digits.evaluate import DIGIT_LABELS

    data = DigitsData.load(data_path)
    return TestInputs(data.test_images, data.test_labels.astype(np.int64), list(DIGIT_LABELS))


def make_plots(
    out_dir: str | Path, evaluation: dict[str, Any], history_path: str | Path | None
) -> dict[str, str]:
    """The standard figures (confusion matrix, t-SNE, training curve) for this use case."""
    from mlopsbench.usecases.common.plots import standard_plots

    return standard_plots(out_dir, evaluation, history_path)
