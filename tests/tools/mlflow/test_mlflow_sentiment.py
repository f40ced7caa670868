"""The MLflow sentiment pipeline offline (``--smoke``: tiny DistilBERT + fixture reviews)."""

from __future__ import annotations

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
