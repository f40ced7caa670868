"""The paper's MNIST classifier as a Prefect flow.

``prepare_data -> build_model -> evaluate_model -> [log_to_mlflow] -> quality_gate ->
promote_model``. Run it like any Prefect flow: with no ``PREFECT_API_URL``, Prefect starts a
temporary local API for the run; with one, the run shows in that server's UI::

    FLOW=src/mlopsbench/tools/prefect/pipeline/digits_flow.py
    python $FLOW                                   # the core's defaults (CNN, 5 epochs)
    python $FLOW '{"model": "simple", "epochs": 1}'
    PREFECT_API_URL=http://127.0.0.1:4200/api python $FLOW '{"model": "simple"}'

Through the harness: ``mlopsbench run digits --tool prefect --model simple --epochs 1``.

Each task is one call into the core (``mlopsbench.usecases.digits.stages``) and returns what
the stage returned: small JSON (paths, metrics, history, lineage, the stage's seconds),
persisted as the task's result. Files go to ``<work_dir>/<flow run id>/``. A model below the
quality gate fails the flow run with the gate's message and is never promoted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task

from mlopsbench.tools.prefect.pipeline.reports import (
    artifact_key,
    publish_evaluation,
    publish_history,
)
from mlopsbench.tools.prefect.pipeline.settings import settings_model
from mlopsbench.tools.prefect.pipeline.shared_tasks import (
    log_to_mlflow,
    mlflow_tracking_uri,
    promote_model,
    quality_gate,
    retry_unless_bad_input,
    run_folder,
)
from mlopsbench.usecases.digits import stages
from mlopsbench.usecases.digits.config import DigitsConfig

DigitsSettings = settings_model(DigitsConfig)  # model, epochs, lr, ...: the core's settings


@task
def prepare_data(config: DigitsConfig, folder: Path) -> dict[str, Any]:
    """Load the images into ``data.npz``; the result keeps its lineage (source, digest)."""
    return stages.prepare_data(config, folder)


@task(
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_unless_bad_input,
    timeout_seconds=3600,
)
def build_model(config: DigitsConfig, data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Train; save ``model/`` (safetensors) and the per-epoch history (also a table artifact)."""
    model = stages.train_model(config, data["data_path"], folder)
    publish_history(model["history"], key=artifact_key("digits", config.model, "history"))
    return model


@task
def evaluate_model(
    config: DigitsConfig, data: dict[str, Any], model: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Score the model on the test split; the report and the plots become artifacts."""
    evaluation = stages.evaluate_model(
        config, data["data_path"], model["model_dir"], folder, history_path=model["history_path"]
    )
    publish_evaluation(
        evaluation,
        key=artifact_key("digits", config.model, "evaluation"),
        title=f"Digits · {config.model} · {config.epochs} epoch(s)",
        facts={
            "dataset": f"{data['source']} ({data['n_train']} train / {data['n_test']} test, "
            f"digest {data['digest']})",
            "lr": config.lr,
            "batch size": config.batch_size,
            "train seconds": round(model["seconds"], 2),
        },
    )
    return evaluation


@flow(name="digits", persist_result=True, result_serializer="json")
def digits_pipeline(
    config: DigitsSettings = DigitsSettings(),
    work_dir: str = "flow-runs",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate a digit classifier; promote it when it passes the quality gate.

    Args:
        config: The digits settings of the core (defaults: the paper's).
        work_dir: Where each flow run writes its files (``<work_dir>/<flow run id>/``).
        mlflow_uri: Also log the run to this MLflow tracking URI (default:
            ``$MLFLOW_TRACKING_URI``, else not at all).
    """
    cfg: DigitsConfig = config.to_config()
    folder = run_folder(work_dir)
    data = prepare_data(cfg, folder)
    model = build_model(cfg, data, folder)
    evaluation = evaluate_model(cfg, data, model, folder)
    uri = mlflow_tracking_uri(mlflow_uri)
    if uri:  # before the gate: a model that fails it is worth a record too
        log_to_mlflow(uri, "digits", cfg, data, model, evaluation, folder)
    quality_gate(evaluation)
    promote_model(model, key=artifact_key("digits", cfg.model))
    return {"metrics": evaluation["metrics"], "gate": evaluation["gate"]}


if __name__ == "__main__":
    digits_pipeline(config=json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
