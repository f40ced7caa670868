"""The MLflow sentiment pipeline offline (``--smoke``: tiny DistilBERT + fixture reviews)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import Store
from mlopsbench import tracking
from mlopsbench.result import RunResult
from mlopsbench.tools.mlflow import adapter
from mlopsbench.usecases.sentiment.config import SentimentConfig


@pytest.fixture(scope="module")
def sentiment_run(store: Store) -> RunResult:
    return adapter.run(store.request("sentiment-smoke", SentimentConfig(smoke=True), "sentiment"))


def test_sentiment_run_registered_and_promoted(sentiment_run: RunResult, store: Store) -> None:
    assert sentiment_run.status == "ok", sentiment_run.error
    info = sentiment_run.tool_info
    assert info["model_name"] == "sentiment-tiny-distilbert"
    assert info["promoted"] is True and info["validation_status"] == "approved"
    assert sentiment_run.metrics["validation_accuracy"] == pytest.approx(
        sentiment_run.metrics["accuracy"]
    )
    assert {"model", "evaluate", "validate", "registry"} <= set(sentiment_run.timings)
    client = store.client()
    run = client.get_run(info["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "mlopsbench-sentiment"
    assert run.data.params["smoke"] == "True" and run.data.params["truncation"] == "tokens"
    contexts = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert contexts["evaluation"].digest == info["dataset"]["digest"]
    assert contexts["training"].name.startswith("sentiment:")  # the smoke model's sample
    assert adapter.evidence(sentiment_run) == dict.fromkeys(adapter.EVIDENCE_KEYS, True)


def test_sentiment_pyfunc_takes_a_text_column(sentiment_run: RunResult, store: Store) -> None:
    from mlopsbench.usecases.sentiment.data import Reviews
    from mlopsbench.usecases.sentiment.infer import predict
    from mlopsbench.usecases.sentiment.model import load_classifier

    tracking.use_tracking_uri(store.uri)
    model = tracking.load_registered_model("models:/sentiment-tiny-distilbert@champion")
    texts = list(Reviews.load(sentiment_run.artifacts["data"]).texts[:12])
    served = model.predict(pd.DataFrame({"text": texts}))
    assert list(served.columns) == ["label"]
    core_model, tokenizer = load_classifier(sentiment_run.artifacts["model"])
    assert served["label"].tolist() == predict(core_model, tokenizer, texts).preds.tolist()
    with pytest.raises(Exception, match="text"):
        model.predict(pd.DataFrame({"review": texts}))


@pytest.fixture(scope="module")
def reference_run(store: Store, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A checkpoint used as it is (``--model-path``, no fine-tuning): logged by reference."""
    from mlopsbench.usecases.sentiment import stages

    folder = tmp_path_factory.mktemp("pretrained")
    checkpoint = stages.prepare_model(SentimentConfig(smoke=True), folder)["model_dir"]
    cfg = SentimentConfig(model_path=checkpoint, source="fixture")
    return adapter.run(store.request("sentiment-reference", cfg, "sentiment"))


def test_a_pretrained_checkpoint_is_logged_by_reference(
    reference_run: RunResult, store: Store
) -> None:
    import json

    import mlflow.artifacts

    from mlopsbench.usecases.sentiment.model import read_reference

    assert reference_run.status == "ok", reference_run.error
    info = reference_run.tool_info
    assert info["validation_status"] == "approved"
    assert reference_run.metrics["validation_accuracy"] == reference_run.metrics["accuracy"]
    reference = read_reference(reference_run.artifacts["model"])
    client = store.client()
    model_id = tracking.logged_model_id(client.get_model_version(info["model_name"], "1"))
    assert model_id is not None
    files = []
    folders = [""]
    while folders:  # every file of the logged model, recursively
        for item in client.list_logged_model_artifacts(model_id, folders.pop() or None):
            (folders if item.is_dir else files).append(item.path)
    assert "artifacts/model/reference.json" in files
    assert not [f for f in files if f.endswith((".safetensors", ".bin"))], files
    root = client.get_logged_model(model_id).artifact_location

    def read(path: str) -> str:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{path}")
        return Path(local).read_text()

    assert reference["weights"]["model.safetensors"]["sha256"] in read("MLmodel")
    logged = json.loads(read("artifacts/model/reference.json"))
    assert logged == reference
    # The registered version resolves its reference and serves the checkpoint's labels.
    tracking.use_tracking_uri(store.uri)
    served = tracking.load_registered_model(f"models:/{info['model_name']}@champion")
    texts = ["A moving, beautifully acted film.", "Dull and far too long."]
    assert served.predict(pd.DataFrame({"text": texts}))["label"].tolist() in ([1, 0], [0, 1])
    expected = dict.fromkeys(adapter.EVIDENCE_KEYS, True) | {"per_epoch_metrics": False}
    assert adapter.evidence(reference_run) == expected  # nothing trained: no epochs
