"""Typed configuration of the sentiment use case (the paper's IMDB + DistilBERT classifier)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError

DEFAULT_MODEL = "distilbert-base-uncased-finetuned-sst-2-english"
SOURCES = ("hf", "aclimdb", "file", "fixture")
TRUNCATIONS = ("tokens", "chars")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
DEVICES = ("cpu", "cuda", "auto")
LABELS = ("negative", "positive")  # index = label id everywhere in the core

# Defaults that depend on the data source / model (None in the config means "use these").
DEFAULT_SAMPLE = 500  # the paper: 250 negative + 250 positive IMDB test reviews
FIXTURE_SAMPLE = 100  # held-out fixture reviews (50 per class); the other 200 train the tiny model
DEFAULT_TRAIN_SAMPLE = 1000  # fine-tuning sample from the source's training split
HUB_EPOCHS, HUB_LR = 2, 5e-5  # fine-tuning a pre-trained DistilBERT
TINY_EPOCHS, TINY_LR = 10, 1e-3  # training the smoke model from scratch (swept on the fixture)


@dataclass(frozen=True)
class SentimentConfig:
    """Everything that defines one sentiment run. Defaults are the paper's (500 reviews, 0.80)."""

    smoke: bool = False  # tiny offline model + fixture reviews
    model_path: str | None = None  # local checkpoint folder instead of the hub model
    model_name: str = DEFAULT_MODEL
    source: str | None = None  # None -> "fixture" with smoke, else "hf" (see data_source)
    data_path: str | None = None  # aclImdb/ folder or CSV/Parquet/JSONL file
    sample_size: int | None = None  # test reviews, half per class; None -> 500 (fixture: 100)
    seed: int = 42
    max_length: int = 512  # tokens, or characters with truncation="chars"
    truncation: str = "tokens"  # "chars" reproduces the paper's text[:512]
    batch_size: int = 8  # larger batches were slower on 2 CPU cores (cache misses), see benchmark
    fine_tune: bool = False
    fine_tune_epochs: int | None = None  # None -> 2 (pre-trained) / 10 (smoke model)
    fine_tune_lr: float | None = None  # None -> 5e-5 (pre-trained) / 1e-3 (smoke model)
    fine_tune_batch_size: int = 16
    train_sample_size: int | None = None  # None -> 1000 (fixture: every non-test review)
    threshold: float = 0.80  # quality gate on accuracy, as the paper
    precision: str = "fp32"  # bf16/int8/auto: guarded, see infer.predict_guarded
    device: str = "cpu"

    def __post_init__(self) -> None:
        _choose("data source", self.data_source, SOURCES)
        _choose("truncation", self.truncation, TRUNCATIONS)
        _choose("precision", self.precision, PRECISIONS)
        _choose("device", self.device, DEVICES)
        if self.data_source in ("aclimdb", "file") and not self.data_path:
            raise ConfigError(f"data source {self.data_source!r} needs --data-path")
        if self.smoke and self.model_path:
            raise ConfigError("--smoke builds its own tiny model; drop --model-path (or --smoke)")
        for name in ("sample_size", "train_sample_size"):
            value = getattr(self, name)
            if value is not None and (value < 2 or value % 2):
                raise ConfigError(
                    f"{name} must be an even number >= 2 (half per class), got {value}"
                )
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")
        for name in ("batch_size", "fine_tune_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fine_tune_epochs is not None and self.fine_tune_epochs < 1:
            raise ConfigError(f"fine_tune_epochs must be >= 1, got {self.fine_tune_epochs}")
        if self.fine_tune_lr is not None and self.fine_tune_lr <= 0:
            raise ConfigError(f"fine_tune_lr must be > 0, got {self.fine_tune_lr}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")

    # --- resolved values (what the run really uses) ---------------------------------------

    @property
    def data_source(self) -> str:
        """The source the run reads. ``source`` itself stays None when unset, so that a
        ``to_dict``/``from_dict`` round trip that flips ``smoke`` still follows it."""
        if self.source is not None:
            return self.source
        return "fixture" if self.smoke else "hf"

    @property
    def test_size(self) -> int:
        if self.sample_size is not None:
            return self.sample_size
        return FIXTURE_SAMPLE if self.data_source == "fixture" else DEFAULT_SAMPLE

    @property
    def trains(self) -> bool:
        """Whether ``prepare_model`` trains (always for the smoke model)."""
        return self.smoke or self.fine_tune

    @property
    def epochs(self) -> int:
        if self.fine_tune_epochs is not None:
            return self.fine_tune_epochs
        return TINY_EPOCHS if self.smoke else HUB_EPOCHS

    @property
    def lr(self) -> float:
        if self.fine_tune_lr is not None:
            return self.fine_tune_lr
        return TINY_LR if self.smoke else HUB_LR

    @property
    def model_label(self) -> str:
        """Human-readable model name for records and reports."""
        if self.smoke:
            base = "tiny-distilbert"
        elif self.model_path:
            base = f"local:{Path(self.model_path).name or self.model_path}"
        else:
            base = self.model_name
        return f"{base}+finetuned" if self.fine_tune and not self.smoke else base

    # --- (de)serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-friendly view for logging params (the fields as given; see data_source)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SentimentConfig:
        """Inverse of :meth:`to_dict` (unknown keys are rejected)."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown sentiment config keys: {', '.join(sorted(unknown))}")
        return cls(**values)

    def with_overrides(self, **changes: Any) -> SentimentConfig:
        return replace(self, **changes)


def _choose(what: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
