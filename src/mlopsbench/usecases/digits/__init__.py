"""Digits use case: the paper's MNIST classifiers (SimpleNN, DeepNN, CNN) as a pure core.

No MLOps tool is imported here. Tools call :mod:`mlopsbench.usecases.digits.stages` (one call per
step); ``config`` and ``data`` import only numpy so that DAG/flow/pipeline files stay light.
"""

from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.digits.config import DigitsConfig

USECASE = UseCase(
    name="digits",
    title="Digits (the paper's MNIST classifier)",
    config_class=DigitsConfig,
    stages_module="mlopsbench.usecases.digits.stages",
    model_stage="train",
    labels=tuple(str(d) for d in range(10)),
    input_kind="images",
    data_context="training",  # the file holds both splits
    data_file="data.npz",
    default_threshold=DigitsConfig().threshold,
)
