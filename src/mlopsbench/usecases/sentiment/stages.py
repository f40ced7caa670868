"""The sentiment pipeline as file-level stages: what each tool's step/task/component calls.

Same shape as the digits stages: each stage reads and writes files in a folder and returns a
small JSON-able dict. ``prepare_data`` writes the test sample (``reviews.jsonl``);
``prepare_model`` resolves the checkpoint folder, or trains one (smoke model, ``--fine-tune``)
into ``model/``; ``evaluate_model`` classifies the sample and writes metrics, predictions,
embeddings and plots. Orchestrators hand over the returned paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlopsbench.result import write_json_atomic
from mlopsbench.usecases.common.gate import check_gate
from mlopsbench.usecases.common.plots import EMBEDDINGS_FILE
from mlopsbench.usecases.common.usecase import TestInputs, timed_stage
from mlopsbench.usecases.sentiment.config import LABELS, SentimentConfig

DATA_FILE = "reviews.jsonl"
TRAIN_FILE = "train_reviews.jsonl"
MODEL_DIR = "model"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.jsonl"


def check_inputs(cfg: SentimentConfig) -> None:
    """Fail with one line when a local input is missing or broken, before any run folder or
    step exists: the reviews path must exist, a local checkpoint must be usable."""
    from mlopsbench.errors import DataError
    from mlopsbench.usecases.sentiment.model import check_model_dir

    if cfg.data_path and not Path(cfg.data_path).expanduser().exists():
        what = "data file" if cfg.data_source == "file" else f"{cfg.data_source} folder"
        raise DataError(f"{what} not found: {cfg.data_path}")
    if cfg.model_path:
        check_model_dir(Path(cfg.model_path).expanduser())


@timed_stage
def prepare_data(cfg: SentimentConfig, out_dir: str | Path) -> dict[str, Any]:
    """Draw the stratified test sample and write it as ``reviews.jsonl``; return path + lineage."""
    from mlopsbench.usecases.sentiment.data import load_test_reviews

    reviews = load_test_reviews(cfg)
    path = reviews.save(Path(out_dir) / DATA_FILE)
    return {"data_path": str(path), **reviews.summary("test")}


@timed_stage
def prepare_model(
    cfg: SentimentConfig, out_dir: str | Path, show_progress: bool = False
) -> dict[str, Any]:
    """The model folder to evaluate: a reference to the hub/local model as is, or one trained here.

    A checkpoint used as it is becomes ``out_dir/model/reference.json`` (name, hub revision,
    folder, sha256 of the weights; see :mod:`.model`): every later stage, and every model log,
    reads it by reference, so its weights are never copied or logged. Smoke mode trains a tiny
    DistilBERT from scratch on the fixture's training reviews; ``fine_tune`` trains the hub/local
    model on a training sample with the same loop. Trained models are saved in ``out_dir/model``
    (safetensors) with ``history.json``.
    """
    from mlopsbench.usecases.sentiment.model import (
        checkpoint_reference,
        resolve_model_dir,
        write_reference,
    )

    if not cfg.trains:
        reference = checkpoint_reference(cfg, resolve_model_dir(cfg))
        return {
            "model_dir": str(write_reference(reference, Path(out_dir) / MODEL_DIR)),
            "model_name": cfg.model_label,
            "model_reference": reference,
            "history": [],
            "history_path": None,
        }
    return _train_model(cfg, Path(out_dir), show_progress)


def _train_model(cfg: SentimentConfig, out_dir: Path, show_progress: bool) -> dict[str, Any]:
    import time

    from mlopsbench.usecases.sentiment.data import load_train_reviews
    from mlopsbench.usecases.sentiment.model import (
        load_classifier,
        resolve_model_dir,
        save_classifier,
    )
    from mlopsbench.usecases.sentiment.train import TrainSettings, train_classifier

    start = time.perf_counter()
    train = load_train_reviews(cfg)
    train.save(out_dir / TRAIN_FILE)
    if cfg.smoke:
        from mlopsbench.usecases.sentiment.tiny import build_tiny_model, build_tokenizer

        tokenizer = build_tokenizer(train.texts)
        model = build_tiny_model(len(tokenizer.get_vocab()), cfg.seed)
    else:
        model, tokenizer = load_classifier(resolve_model_dir(cfg))
    settings = TrainSettings(
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.fine_tune_batch_size,
        max_length=cfg.max_length,
        truncation=cfg.truncation,
        seed=cfg.seed,
        device=_device(cfg.device),
    )
    history = train_classifier(
        model,
        tokenizer,
        list(train.texts),
        train.labels,
        settings,
        on_epoch_end=_printer(cfg.epochs) if show_progress else None,
    )
    model_dir = save_classifier(model.to("cpu"), tokenizer, out_dir / MODEL_DIR)
    write_json_atomic(out_dir / HISTORY_FILE, history)
    return {
        "model_dir": str(model_dir),
        "model_name": cfg.model_label,
        "history": history,
        "history_path": str(out_dir / HISTORY_FILE),
        "train_data": {**train.summary("train"), "data_path": str(out_dir / TRAIN_FILE)},
        "train_seconds": time.perf_counter() - start,
    }


@timed_stage
def evaluate_model(
    cfg: SentimentConfig,
    data_path: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    plots: bool = True,
    history_path: str | Path | None = None,
    predictor: Any = None,
) -> dict[str, Any]:
    """Classify ``reviews.jsonl`` with the checkpoint; write metrics, predictions, embeddings.

    ``predictor``: an already loaded serving ``Predictor`` (e.g. the registered version loaded
    back from a model registry) whose model and tokenizer are scored instead of loading
    ``model_dir`` again: one scoring pass is then both the evaluation and the validation.
    """
    import numpy as np

    from mlopsbench.usecases.common.metrics import classification_report
    from mlopsbench.usecases.sentiment.data import Reviews
    from mlopsbench.usecases.sentiment.infer import predict_guarded
    from mlopsbench.usecases.sentiment.model import load_classifier

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reviews = Reviews.load(data_path)
    if predictor is not None:
        model, tokenizer = predictor.model, predictor.tokenizer
    else:
        model, tokenizer = load_classifier(model_dir)
    pred, precision_info = predict_guarded(
        model,
        tokenizer,
        list(reviews.texts),
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        truncation=cfg.truncation,
        precision=cfg.precision,
        device=cfg.device,
    )
    report = classification_report(reviews.labels, pred.preds, list(LABELS))
    metrics = report.flat_metrics()
    gate = check_gate(report.accuracy, cfg.threshold)
    inference = {
        **precision_info,
        "batch_size": cfg.batch_size,
        "truncation": cfg.truncation,
        "max_length": cfg.max_length,
        "truncated_fraction": float(pred.truncated.mean()) if len(reviews) else 0.0,
        "mean_tokens": float(pred.n_tokens.mean()) if len(reviews) else 0.0,
        "forward_seconds": pred.seconds,
        "reviews_per_second": len(reviews) / pred.seconds if pred.seconds > 0 else None,
    }
    write_json_atomic(out_dir / METRICS_FILE, metrics)
    write_json_atomic(
        out_dir / EVALUATION_FILE,
        {**report.to_dict(), "n_reviews": len(reviews), "inference": inference},
    )
    _write_predictions(out_dir / PREDICTIONS_FILE, reviews, pred)
    _save_npz(
        out_dir / EMBEDDINGS_FILE,
        embeddings=pred.embeddings,
        labels=reviews.labels,
        preds=pred.preds,
        ids=np.asarray(reviews.ids),
    )
    artifacts = {
        "metrics": str(out_dir / METRICS_FILE),
        "evaluation": str(out_dir / EVALUATION_FILE),
        "predictions": str(out_dir / PREDICTIONS_FILE),
        "embeddings": str(out_dir / EMBEDDINGS_FILE),
    }
    if plots:
        history = history_path or Path(model_dir).parent / HISTORY_FILE
        artifacts.update(make_plots(out_dir, report.to_dict(), history_path=history))
    return {
        "metrics": metrics,
        "gate": gate.to_dict(),
        "confusion": report.confusion,
        "artifacts": artifacts,
        "inference": inference,
    }


def build_model(
    cfg: SentimentConfig, data_path: str | Path, out_dir: str | Path, show_progress: bool = False
) -> dict[str, Any]:
    """The use cases' uniform model stage: :func:`prepare_model` (the test sample in
    ``data_path`` is never trained on; training draws its own sample)."""
    return prepare_model(cfg, out_dir, show_progress=show_progress)


def test_inputs(data_path: str | Path) -> TestInputs:
    """The test sample as the served model sees it: a ``text`` column + true labels."""
    import numpy as np
    import pandas as pd

    from mlopsbench.usecases.sentiment.data import Reviews

    reviews = Reviews.load(data_path)
    return TestInputs(
        pd.DataFrame({"text": list(reviews.texts)}), reviews.labels.astype(np.int64), list(LABELS)
    )


def make_plots(
    out_dir: str | Path, evaluation: dict[str, Any], history_path: str | Path | None
) -> dict[str, str]:
    """The standard figures (confusion matrix, t-SNE, training curve) for this use case."""
    from mlopsbench.usecases.common.plots import standard_plots

    return standard_plots(out_dir, evaluation, history_path)


def _write_predictions(path: Path, reviews: Any, pred: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i, rid in enumerate(reviews.ids):
            row = {
                "id": rid,
                "label": LABELS[int(reviews.labels[i])],
                "pred": LABELS[int(pred.preds[i])],
                "score": round(float(pred.scores[i]), 6),
                "prob_positive": round(float(pred.prob_positive[i]), 6),
                "n_tokens": int(pred.n_tokens[i]),
                "truncated": bool(pred.truncated[i]),
            }
            fh.write(json.dumps(row) + "\n")
    tmp.replace(path)


def _save_npz(path: Path, **arrays: Any) -> None:
    import numpy as np

    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _device(device: str) -> str:
    from mlopsbench.usecases.sentiment.infer import resolve_device

    return resolve_device(device)


def _printer(epochs: int) -> Any:
    def show(row: dict[str, float]) -> None:
        print(
            f"epoch {int(row['epoch'])}/{epochs}: loss {row['train_loss']:.4f} "
            f"accuracy {row['train_accuracy']:.4f}",
            flush=True,
        )

    return show
