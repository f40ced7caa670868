"""Digits use case: the paper's MNIST classifiers (SimpleNN, DeepNN, CNN) as a pure core.

No MLOps tool is imported here. Tools call :mod:`mlopsbench.usecases.digits.stages` (one call per
step); ``config`` and ``data`` import only numpy so that DAG/flow/pipeline files stay light.
"""
