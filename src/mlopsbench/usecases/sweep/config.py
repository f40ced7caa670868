"""Typed configuration of the sweep scenario: N digits trials over a search space.

The space, the sampler's seed and the number of parallel trials are settings of one frozen
dataclass, so every tool's sweep (Metaflow ``foreach``, Airflow ``.expand``, KFP
``ParallelFor``, ...) reads the same defaults and help, and samples the same trials.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import setting
from mlopsbench.usecases.digits.config import DigitsDataConfig, canonical_model_name

SAMPLERS = ("random", "grid")
MAX_TRIALS = 256


def parse_list(text: str, kind: type, name: str) -> tuple[Any, ...]:
    """``"0.001, 0.01"`` -> ``(0.001, 0.01)``; an empty or malformed list is one line."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise ConfigError(f"{name} must list at least one value")
    try:
        values = tuple(kind(item) for item in items)
    except ValueError:
        raise ConfigError(
            f"{name} must be comma-separated {kind.__name__}s, got {text!r}"
        ) from None
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} lists a value twice: {text!r}")
    return values


@dataclass(frozen=True)
class SweepConfig:
    """A hyper-parameter sweep over the digits classifier (the paper's Katib future work)."""

    trials: int = setting(8, "Trials to run (sampled from the space without repeats).")
    sampler: str = setting(
        "random",
        "How trials are drawn: random (seeded, without repeats) or grid (the space in order).",
        choices=SAMPLERS,
    )
    sweep_seed: int = setting(0, "Seed of the trial sampler: the same trials on every tool.")
    models: str = setting("simple,deep,cnn", "Architectures to search (comma-separated).")
    learning_rates: str = setting(
        "0.0003,0.001,0.003,0.01", "Adam learning rates to search (comma-separated)."
    )
    batch_sizes: str = setting("32,64,128", "Mini-batch sizes to search (comma-separated).")
    epochs: int = setting(2, "Training epochs of every trial.")
    seed: int = setting(42, "Training seed of every trial (the same for every tool).")
    workers: int = setting(1, "Trials run in parallel (each tool's own parallelism setting).")
    threshold: float = setting(0.90, "Quality gate: the least test accuracy the best trial needs.")
    data: DigitsDataConfig = setting(default_factory=DigitsDataConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.trials <= MAX_TRIALS:
            raise ConfigError(f"trials must be in [1, {MAX_TRIALS}], got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose random or grid")
        models = parse_list(self.models, str, "models")
        object.__setattr__(self, "models", ",".join(canonical_model_name(m) for m in models))
        rates = parse_list(self.learning_rates, float, "learning_rates")
        if any(rate <= 0 for rate in rates):
            raise ConfigError(f"learning rates must be > 0, got {self.learning_rates!r}")
        sizes = parse_list(self.batch_sizes, int, "batch_sizes")
        if any(size < 1 for size in sizes):
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_sizes!r}")
        if self.trials > self.space_size:
            raise ConfigError(
                f"trials ({self.trials}) exceed the {self.space_size} distinct points of the "
                "space; list more values or run fewer trials"
            )
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")

    @property
    def model_list(self) -> tuple[str, ...]:
        return tuple(self.models.split(","))

    @property
    def learning_rate_list(self) -> tuple[float, ...]:
        return parse_list(self.learning_rates, float, "learning_rates")

    @property
    def batch_size_list(self) -> tuple[int, ...]:
        return parse_list(self.batch_sizes, int, "batch_sizes")

    @property
    def space_size(self) -> int:
        return len(self.model_list) * len(self.learning_rate_list) * len(self.batch_size_list)

    @property
    def model_label(self) -> str:
        """A row of ``compare sweep``: the same sweep at another parallelism is another row."""
        return f"{self.trials}x-w{self.workers}"

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "data"}
        flat.update({f"data_{k}": v for k, v in asdict(self.data).items()})
        return flat

    def with_overrides(self, **changes: Any) -> SweepConfig:
        return replace(self, **changes)
