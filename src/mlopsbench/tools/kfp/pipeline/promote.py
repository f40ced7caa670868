"""The promotion component both pipelines run behind their quality gate.

It writes ``promotion.json`` (what was promoted, from which data, how good) and, given an MLflow
tracking URI, logs the run there through mlopsbench's tracking helper: params, metrics,
per-epoch history, the evaluation files, the model and the dataset's lineage.

No ``from __future__ import annotations``: KFP reads the component's annotations as types.
"""

import json
import time
from pathlib import Path
from typing import Any

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from mlopsbench.result import write_json_atomic
from mlopsbench.tools.kfp.pipeline.component_helpers import (
    file_in,
    optional_file_in,
    scalar_metrics,
)

PROMOTION_FILE = "promotion.json"


def promote_model(
    usecase: str,
    run_name: str,
    mlflow_uri: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Input[Metrics],
    evaluation: Input[Artifact],
    promotion: Output[Artifact],
):
    """Record the promotion of a model that passed the quality gate (and log it to MLflow)."""
    from mlopsbench.tools.kfp.pipeline.promote import PROMOTION_FILE, record_promotion

    record = record_promotion(
        usecase, run_name, mlflow_uri, dataset, model, metrics, evaluation, promotion.path
    )
    promotion.metadata.update({"record": PROMOTION_FILE, "mlflow": record["mlflow"] or {}})


def record_promotion(
    usecase: str,
    run_name: str,
    mlflow_uri: str,
    dataset: Any,
    model: Any,
    metrics: Any,
    evaluation: Any,
    out_dir: str,
) -> dict[str, Any]:
    """Write ``promotion.json`` in ``out_dir`` and return it.

    Paths come from this component's own input artifacts, never from the producer's absolute
    paths: on a cluster each pod mounts artifacts somewhere else.
    """
    lineage = _lineage(dataset)
    record: dict[str, Any] = {
        "usecase": usecase,
        "run_name": run_name,
        "model_uri": model.uri,
        "model_dir": file_in(model, "model_dir"),
        "metrics": scalar_metrics(metrics.metadata),
        "dataset": {k: lineage[k] for k in ("source", "digest") if k in lineage},
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mlflow": None,
    }
    if mlflow_uri:
        record["mlflow"] = _log_to_mlflow(
            mlflow_uri, usecase, run_name, lineage, model, metrics, evaluation
        )
    write_json_atomic(Path(out_dir) / PROMOTION_FILE, record)
    return record


def _lineage(dataset: Any) -> dict[str, Any]:
    """The data summary ``prepare_data`` returned, with the data file's path in this pod."""
    summary = {k: v for k, v in dataset.metadata.items() if k != "seconds"}
    return {**summary, "data_path": file_in(dataset, "data_path")}


def _log_to_mlflow(
    uri: str,
    usecase: str,
    run_name: str,
    lineage: dict[str, Any],
    model: Any,
    metrics: Any,
    evaluation: Any,
) -> dict[str, Any]:
    """Through the shared tracking helper: the KFP pipeline never talks to MLflow itself."""
    from mlopsbench.tracking import log_run_to_mlflow

    history_path = optional_file_in(model, "history_path")
    history = json.loads(Path(history_path).read_text()) if history_path else []
    files = {
        Path(name).name: str(Path(evaluation.path) / name)
        for name in evaluation.metadata.get("artifacts", {}).values()
    }
    info = log_run_to_mlflow(
        uri,
        tool="kfp",
        usecase=usecase,
        run_name=run_name or f"kfp-{usecase}",
        params=dict(model.metadata.get("params", {})),
        metrics=scalar_metrics(metrics.metadata),
        history=history,
        artifacts=files,
        model_dir=file_in(model, "model_dir"),
        dataset=lineage,
        tags={"orchestrator": "kfp", "promoted": "true"},
    )
    return dict(info)
