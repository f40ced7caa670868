"""Pipeline parameters <-> core configs, and the KFP settings (container image).

KFP parameters are flat, typed and cannot be ``None``: an optional path travels as ``""`` and
an optional count as ``0``. Components rebuild the core config from the parameters they get
with the functions here (imported inside the component body), so the mapping lives in one
place and the config's own validation runs inside the component too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlopsbench.errors import ConfigError

IMAGE_ENV = "MLOPSBENCH_KFP_IMAGE"
DEFAULT_IMAGE = "mlopsbench:latest"
USECASES = ("digits", "sentiment")


@dataclass(frozen=True)
class KfpSettings:
    """What the compiled components need to know about where they will run."""

    image: str = DEFAULT_IMAGE  # base_image of every component: must have mlopsbench installed

    def __post_init__(self) -> None:
        if not self.image.strip() or any(c.isspace() for c in self.image):
            raise ConfigError(f"invalid container image name {self.image!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KfpSettings:
        env = os.environ if environ is None else environ
        return cls(image=env.get(IMAGE_ENV) or DEFAULT_IMAGE)


def check_usecase(usecase: str) -> str:
    if usecase not in USECASES:
        raise ConfigError(f"unknown use case {usecase!r}; choose digits or sentiment")
    return usecase


# Optional config fields and the "no value" sentinel they travel as (KFP parameters cannot be
# None). Parameter names are exactly the keys of the configs' flat ``to_dict()``.
_OPTIONAL = {
    "digits": {"data_path": "", "data_limit_train": 0},
    "sentiment": {
        "model_path": "",
        "source": "",
        "data_path": "",
        "sample_size": 0,
        "fine_tune_epochs": 0,
        "fine_tune_lr": 0.0,
        "train_sample_size": 0,
    },
}


def pipeline_arguments(usecase: str, cfg: Any) -> dict[str, Any]:
    """Every field of the config as a pipeline argument, so a run reproduces the config."""
    optional = _OPTIONAL[check_usecase(usecase)]
    args: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        if value is None:
            if key not in optional:
                raise ConfigError(f"{usecase} setting {key!r} has no value to pass to KFP")
            value = optional[key]
        args[key] = value
    return args


def digits_config(**values: Any) -> Any:
    """A ``DigitsConfig`` from (a subset of) the pipeline parameters; the rest keep defaults."""
    from mlopsbench.usecases.digits.config import DigitsConfig

    return DigitsConfig.from_dict(_restore("digits", values))


def sentiment_config(**values: Any) -> Any:
    """A ``SentimentConfig`` from (a subset of) the pipeline parameters."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    return SentimentConfig.from_dict(_restore("sentiment", values))


def sentiment_config_from(values: Mapping[str, Any]) -> Any:
    """``sentiment_config`` from a component's ``locals()``: picks the config's fields by name
    (each sentiment component takes the whole config as typed parameters)."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    fields = SentimentConfig.__dataclass_fields__
    return sentiment_config(**{k: v for k, v in values.items() if k in fields})


def _restore(usecase: str, values: Mapping[str, Any]) -> dict[str, Any]:
    optional = _OPTIONAL[usecase]
    return {k: (None if k in optional and v == optional[k] else v) for k, v in values.items()}
