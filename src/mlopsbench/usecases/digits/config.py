"""Typed configuration of the digits use case (the paper's MNIST classifier)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import setting

MODEL_NAMES = ("simple", "deep", "cnn")
DATA_SOURCES = ("sklearn", "hf", "torchvision", "idx", "npz")
PRECISIONS = ("fp32", "bf16", "auto")
DEVICES = ("cpu", "cuda", "auto")
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


def infer_data_source(path: str | None) -> str | None:
    """The data source a local path holds (None when it cannot be told from the path).

    ``*.npz`` file -> npz; a folder with IDX files -> idx; a ``save_to_disk`` folder -> hf.
    """
    from pathlib import Path

    if not path:
        return None
    target = Path(path).expanduser()
    if target.suffix.lower() == ".npz":
        return "npz"
    if target.is_dir():
        if (target / "dataset_dict.json").is_file() or (target / "state.json").is_file():
            return "hf"
        if any(target.glob("*-idx?-ubyte*")):  # MNIST's own file names, maybe gzipped
            return "idx"
    return None


def _source_of(path: str) -> str:
    """The source a given path holds, or a one-line error saying to name it."""
    from pathlib import Path

    from mlopsbench.errors import DataError

    source = infer_data_source(path)
    if source is not None:
        return source
    if not Path(path).expanduser().exists():
        raise DataError(f"data path not found: {path}")
    raise ConfigError(
        f"cannot tell which data source {path} holds; add --data npz, idx, hf or torchvision"
    )


@dataclass(frozen=True)
class DigitsDataConfig:
    """Where the images come from and how they are split."""

    source: str | None = setting(
        None,
        "Where the images come from (sklearn: bundled, offline; hf: Hugging Face MNIST; "
        "idx: MNIST's files; npz: x_train/y_train/x_test/y_test arrays); default: told from "
        "--data-path, else sklearn.",
        choices=DATA_SOURCES,
        flag="data",
    )
    path: str | None = setting(
        None,
        "Local data: an idx folder, an npz file, a torchvision root or an hf save_to_disk "
        "folder (the source is told from it when --data is not given).",
    )
    test_fraction: float = setting(
        0.2, "Share of images held out for testing (sources without a test split)."
    )
    split_seed: int = setting(42, "Seed of the train/test split and of the training limit.")
    limit_train: int | None = setting(
        None, "Use at most this many training images, stratified (all when unset)."
    )

    def __post_init__(self) -> None:
        if self.source is None:  # unset: what the path holds, else the bundled digits
            object.__setattr__(self, "source", _source_of(self.path) if self.path else "sklearn")
        if self.source not in DATA_SOURCES:
            raise ConfigError(
                f"unknown data source {self.source!r}; choose one of: {', '.join(DATA_SOURCES)}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.source in ("idx", "npz") and not self.path:
            raise ConfigError(f"data source {self.source!r} needs a path (--data-path)")
        if self.source == "sklearn" and self.path:
            # A path next to the default source is a forgotten --data: never train on the
            # bundled digits while the user believes their own file is used.
            guess = infer_data_source(self.path)
            hint = f"--data {guess}" if guess else "--data npz, idx, hf or torchvision"
            raise ConfigError(
                f"the bundled sklearn digits take no data path ({self.path}); add {hint}"
            )
        if self.limit_train is not None and self.limit_train < NUM_CLASSES_MIN_LIMIT:
            raise ConfigError(
                f"limit_train must be >= {NUM_CLASSES_MIN_LIMIT} (one image per class), "
                f"got {self.limit_train}"
            )


@dataclass(frozen=True)
class DigitsConfig:
    """Everything that defines one digits run. Defaults are the paper's."""

    model: str = setting(
        "cnn", "Architecture: the paper's SimpleNN, DeepNN or CNN.", choices=MODEL_NAMES
    )
    epochs: int = setting(5, "Training epochs.")
    lr: float = setting(1e-3, "Adam learning rate.")
    batch_size: int = setting(64, "Mini-batch size.")
    seed: int = setting(42, "Random seed.")
    threshold: float = setting(0.90, "Quality gate: the least test accuracy a model needs.")
    precision: str = setting(
        "fp32",
        "Training precision: bf16 autocasts (fp32 weights); auto uses bf16 only where it is "
        "faster (the CNN on AMX).",
        choices=PRECISIONS,
    )
    device: str = setting("cpu", "Where to train.", choices=DEVICES)
    data: DigitsDataConfig = setting(default_factory=DigitsDataConfig)

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
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose cpu, cuda or auto")

    @property
    def model_label(self) -> str:
        """Human-readable model name for records and reports."""
        return self.model

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
