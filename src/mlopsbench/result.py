"""The one result record every tool runner returns, and the request every runner receives."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

USECASES = ("digits", "sentiment")

# What every tool's evidence(result) checks in the tool's own store (the harness's checklist).
EVIDENCE_KEYS = (
    "params",
    "per_epoch_metrics",
    "final_metrics",
    "model_artifact",
    "plots",
    "lineage",
    "run_state",
)


@dataclass(frozen=True)
class RunRequest:
    """What to run, passed explicitly to a tool runner.

    ``config`` is a ``DigitsConfig`` or a ``SentimentConfig``; ``out_dir`` is this run's own
    folder (every file the run writes goes under it); ``tracking_uri`` makes tools that support
    it also log to MLflow; ``options`` carries tool-specific switches (strings).
    """

    usecase: str
    config: Any
    out_dir: Path
    tracking_uri: str | None = None
    show_progress: bool = False
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    """One run of one use case on one tool: what the harness and the report consume."""

    tool: str
    usecase: str
    model: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0
    status: str = "ok"  # "ok" | "failed" | "gate_failed"
    error: str | None = None
    gate: dict[str, Any] | None = None
    tool_info: dict[str, Any] = field(default_factory=dict)  # run ids, model versions, aliases
    history: list[dict[str, float]] = field(default_factory=list)  # per-epoch metrics
    started_at: str = ""
    environment: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def write(self, path: str | Path) -> Path:
        """Write as JSON atomically (a crash never leaves a half-written record)."""
        return write_json_atomic(path, self.to_dict())


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    tmp.replace(path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def peak_rss_mb(include_children: bool = True) -> float:
    """Peak resident set size of this process (and, optionally, its waited-for children)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if include_children else 0
    return max(own, kids) / 1024.0  # ru_maxrss is KiB on Linux


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


CORE_DISTRIBUTIONS = ("mlopsbench", "torch", "transformers", "scikit-learn")


def environment_info(distributions: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Python, platform and the versions of the core's and the given distributions.

    Metadata only: nothing is imported. A tool's record passes its own distributions.
    """
    from importlib import metadata

    info = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (*CORE_DISTRIBUTIONS, *distributions):
        dist = dist.split("[", 1)[0]  # a distribution with extras: zenml[server] is zenml
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return info


class StageTimer:
    """Collects wall-clock seconds per named stage: ``with timer.stage("train"): ...``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started
