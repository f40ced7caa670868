"""Sentiment use case: IMDB movie reviews classified with DistilBERT (the paper's second case).

Pure core (no MLOps tool imports). Tools call :mod:`mlopsbench.usecases.sentiment.stages`;
``--smoke`` builds a tiny DistilBERT on the review fixture shipped in ``fixtures/`` so that the
whole path runs offline.
"""
