"""What a use case is, seen from the tools: its config, its three stages, its labels, its name.

Tools and the harness work with any use case through this descriptor, never by branching on
``digits`` / ``sentiment``. Every use case's ``stages`` module offers the same three stages
with one signature each::

    prepare_data(cfg, out_dir) -> {"data_path", "seconds", ...lineage}
    build_model(cfg, data_path, out_dir, show_progress=False)
        -> {"model_dir", "model_name", "history", "history_path", "seconds", ...}
    evaluate_model(cfg, data_path, model_dir, out_dir, history_path=None, plots=True)
        -> {"metrics", "gate", "confusion", "artifacts", "seconds", ...}

and ``check_inputs(cfg)`` (local inputs exist: called before any run folder or step is made)
and ``test_inputs(data_path)`` (the test split as a served model sees it). Each stage reports
its own wall-clock ``seconds``, so tools time the core from what their steps return, without
timing code in the pipelines.
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from mlopsbench.usecases.common.params import ParamSpec, config_from_params, config_params

F = TypeVar("F", bound=Callable[..., dict[str, Any]])

STAGES = ("prepare_data", "build_model", "evaluate_model")


@dataclass(frozen=True)
class TestInputs:
    """The test split as a served model receives it, and the truth to score it against."""

    __test__ = False  # not a pytest class

    model_input: Any  # ndarray of uint8 images / DataFrame with a ``text`` column
    y_true: Any  # int64 (N,)
    labels: list[str]


@dataclass(frozen=True)
class UseCase:
    """One use case, described once for every tool."""

    name: str
    title: str
    config_class: type
    stages_module: str  # module offering the three stages and test_inputs
    model_stage: str  # timing key of build_model: "train" (digits) or "model" (sentiment)
    labels: tuple[str, ...]
    input_kind: str  # "images" (uint8 N x 28 x 28) or "texts" (a ``text`` column)
    data_context: str  # what prepare_data's file is for: "training" or "evaluation"
    data_file: str  # the file prepare_data writes
    default_threshold: float = 0.0
    run_axis: str = "model"  # the setting ``compare`` varies from row to row

    @property
    def stages(self) -> ModuleType:
        return importlib.import_module(self.stages_module)

    @property
    def serving_module(self) -> str:
        """``<package>.serving``: ``Predictor(model_dir, settings)`` and ``settings_of(cfg)``,
        what a registered model runs (light: it travels with the model)."""
        return self.stages_module.rsplit(".", 1)[0] + ".serving"

    @property
    def serving(self) -> ModuleType:
        return importlib.import_module(self.serving_module)

    @property
    def stage_keys(self) -> dict[str, str]:
        """Stage function -> the timing key the reports use."""
        return {
            "prepare_data": "data",
            "build_model": self.model_stage,
            "evaluate_model": "evaluate",
        }

    def check_inputs(self, cfg: Any) -> None:
        """Missing local data or a broken local model: one line, before anything is written."""
        self.stages.check_inputs(cfg)

    def params(self) -> tuple[ParamSpec, ...]:
        return config_params(self.config_class)

    def config(self, values: dict[str, Any] | None = None) -> Any:
        """The config from flat values (unset markers of tools without None allowed)."""
        return config_from_params(self.config_class, values or {})

    def model_label(self, cfg: Any) -> str:
        return str(cfg.model_label)

    def registered_name(self, cfg: Any) -> str:
        """``<use case>-<model label>`` in the characters every model registry accepts."""
        label = re.sub(r"[^a-z0-9._-]+", "-", self.model_label(cfg).lower()).strip("-")
        return f"{self.name}-{label}"


def timed_stage(func: F) -> F:
    """Add the stage's own wall-clock ``seconds`` to the dict it returns."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = func(*args, **kwargs)
        return {**result, "seconds": time.perf_counter() - started}

    return wrapper  # type: ignore[return-value]
