"""The paper's IMDB + DistilBERT sentiment classifier as a Prefect flow.

``prepare_data -> build_model -> evaluate_model -> [log_to_mlflow] -> quality_gate ->
promote_model``. Run it like any Prefect flow: with no ``PREFECT_API_URL``, Prefect starts a
temporary local API for the run; with one, the run shows in that server's UI::

    FLOW=src/mlopsbench/tools/prefect/pipeline/sentiment_flow.py
    python $FLOW '{"smoke": true}'                 # offline: tiny DistilBERT + bundled reviews
    python $FLOW '{"model_path": "./distilbert-sst2", "sample_size": 500}'

Through the harness: ``mlopsbench run sentiment --tool prefect --smoke``.

Each task is one call into the core (``mlopsbench.usecases.sentiment.stages``) and returns what
the stage returned, persisted as the task's result. A pre-trained model is used where it lies
(its folder in the result); one trained here (``smoke`` or ``fine_tune``) is saved under
``<work_dir>/<flow run id>/model``. A model below the quality gate fails the flow run with the
gate's message and is never promoted.
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
from mlopsbench.usecases.sentiment import stages
from mlopsbench.usecases.sentiment.config import SentimentConfig

SentimentSettings = settings_model(SentimentConfig)  # smoke, model_path, ...: the core's


@task
def prepare_data(config: SentimentConfig, folder: Path) -> dict[str, Any]:
    """Draw the test reviews into ``reviews.jsonl``; the result keeps their lineage."""
    return stages.prepare_data(config, folder)


@task(
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_unless_bad_input,
    timeout_seconds=7200,  # fine-tuning on CPU is slow, but never endless
)
def build_model(config: SentimentConfig, folder: Path) -> dict[str, Any]:
    """Load the classifier (with smoke or fine_tune: train it, history as a table artifact)."""
    model = stages.prepare_model(config, folder)
    publish_history(model["history"], key=artifact_key("sentiment", "history"))
    return model


@task
def evaluate_model(
    config: SentimentConfig, data: dict[str, Any], model: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """Classify the reviews; the report and the plots become artifacts."""
    evaluation = stages.evaluate_model(
        config, data["data_path"], model["model_dir"], folder, history_path=model["history_path"]
    )
    publish_evaluation(
        evaluation,
        key=artifact_key("sentiment", "evaluation"),
        title=f"Sentiment · {model['model_name']}",
        facts={
            "dataset": f"{data['source']} (digest {data['digest']})",
            "reviews": data.get("n_test", data.get("n", "")),
            "truncation": f"{config.max_length} {config.truncation}",
            "precision": evaluation["inference"].get("precision_used", config.precision),
            "model seconds": round(model["seconds"], 2),
        },
    )
    return evaluation


@flow(name="sentiment", persist_result=True, result_serializer="json")
def sentiment_pipeline(
    config: SentimentSettings = SentimentSettings(),
    work_dir: str = "flow-runs",
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Classify movie reviews; promote the model when it passes the quality gate.

    Args:
        config: The sentiment settings of the core (defaults: the paper's).
        work_dir: Where each flow run writes its files (``<work_dir>/<flow run id>/``).
        mlflow_uri: Also log the run to this MLflow tracking URI (default:
            ``$MLFLOW_TRACKING_URI``, else not at all).
    """
    cfg: SentimentConfig = config.to_config()
    folder = run_folder(work_dir)
    data = prepare_data(cfg, folder)
    model = build_model(cfg, folder)
    evaluation = evaluate_model(cfg, data, model, folder)
    uri = mlflow_tracking_uri(mlflow_uri)
    if uri:  # before the gate: a model that fails it is worth a record too
        log_to_mlflow(uri, "sentiment", cfg, data, model, evaluation, folder)
    quality_gate(evaluation)
    promote_model(model, key=artifact_key("sentiment", cfg.model_label))
    return {"metrics": evaluation["metrics"], "gate": evaluation["gate"]}


if __name__ == "__main__":
    sentiment_pipeline(config=json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
