"""Typed configuration of the digits use case (the paper's MNIST classifier)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlopsbench.errors import ConfigError

MODEL_NAMES = ("simple", "deep", "cnn")
DATA_SOURCES = ("sklearn", "hf", "torchvision", "idx", "npz")
PRECISIONS = ("fp32", "bf16", "auto")
NUM_CLASSES_MIN_LIMIT = 10  # a stratified subset needs at least one image per digit

# Aliases users may type, mapped to the canonical model names.
_MODEL_ALIASES = {"simplenn": "simple", "deepnn": "deep", "cnnmodel": "cnn"}


def canonical_model_name(name: str) -> str:
    """Return the canonical model name or raise a ConfigError listing the valid ones."""
    key = name.strip().lower()
    key = _MODEL_ALIASES.get(key, key)
    if key not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return key


@dataclass(frozen=True)
class DigitsDataConfig:
    """Where the images come from and how they are split."""

    source: str = "sklearn"
    # idx folder / npz file / torchvision root / hf: a save_to_disk folder (or a cache folder)
    path: str | None = None
    test_fraction: float = 0.2  # only for sources without a fixed test split (sklearn)
    split_seed: int = 42
    limit_train: int | None = None  # optional cap, for quick runs on full MNIST

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ConfigError(
                f"unknown data source {self.source!r}; choose one of: {', '.join(DATA_SOURCES)}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.source in ("idx", "npz") and not self.path:
            raise ConfigError(f"data source {self.source!r} needs a path (--data-path)")
        if self.limit_train is not None and self.limit_train < NUM_CLASSES_MIN_LIMIT:
            raise ConfigError(
                f"limit_train must be >= {NUM_CLASSES_MIN_LIMIT} (one image per class), "
                f"got {self.limit_train}"
            )


@dataclass(frozen=True)
class DigitsConfig:
    """Everything that defines one digits run. Defaults are the paper's."""

    model: str = "cnn"
    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 42
    threshold: float = 0.90  # quality gate, as the paper's test script
    # "bf16": autocast to bfloat16 (fp32 weights); "auto": bf16 only where faster (CNN on AMX)
    precision: str = "fp32"
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    data: DigitsDataConfig = field(default_factory=DigitsDataConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", canonical_model_name(self.model))
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}"
            )
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"unknown device {self.device!r}; choose cpu, cuda or auto")

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-friendly view (data fields prefixed with ``data_``) for logging params."""
        flat = {k: v for k, v in asdict(self).items() if k != "data"}
        flat.update({f"data_{k}": v for k, v in asdict(self.data).items()})
        return flat

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DigitsConfig:
        """Inverse of :meth:`to_dict` (unknown keys are rejected)."""
        data_kwargs = {k[5:]: v for k, v in values.items() if k.startswith("data_")}
        top = {k: v for k, v in values.items() if not k.startswith("data_")}
        known = {f for f in cls.__dataclass_fields__ if f != "data"}
        unknown = set(top) - known
        if unknown:
            raise ConfigError(f"unknown digits config keys: {', '.join(sorted(unknown))}")
        return cls(**top, data=DigitsDataConfig(**data_kwargs))

    def with_overrides(self, **changes: Any) -> DigitsConfig:
        return replace(self, **changes)
