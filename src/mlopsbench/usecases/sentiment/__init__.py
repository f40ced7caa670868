"""Sentiment use case: IMDB movie reviews classified with DistilBERT (the paper's second case).

Pure core (no MLOps tool imports). Tools call :mod:`mlopsbench.usecases.sentiment.stages`;
``--smoke`` builds a tiny DistilBERT on the review fixture shipped in ``fixtures/`` so that the
whole path runs offline.
"""

from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.sentiment.config import LABELS, SentimentConfig

USECASE = UseCase(
    name="sentiment",
    title="Sentiment (the paper's IMDB + DistilBERT classifier)",
    config_class=SentimentConfig,
    stages_module="mlopsbench.usecases.sentiment.stages",
    model_stage="model",
    labels=LABELS,
    input_kind="texts",
    data_context="evaluation",  # the test sample; a training sample is logged apart
    data_file="reviews.jsonl",
    default_threshold=SentimentConfig().threshold,
)
