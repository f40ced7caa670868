"""Find, build and compile the use cases' pipelines; the container image they run in.

A use case's pipeline lives in ``pipeline/<use case>_pipeline.py`` and offers
``build_pipeline(image)``: nothing here names a use case. Its arguments are the config's flat
settings (``to_params``: KFP has no None, so optional settings travel as "" or 0).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import to_params
from mlopsbench.usecases.registry import get_usecase

IMAGE_ENV = "MLOPSBENCH_KFP_IMAGE"
DEFAULT_IMAGE = "mlopsbench:latest"
PIPELINE_PACKAGE = "mlopsbench.tools.kfp.pipeline"


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


def pipeline_module(usecase: str) -> str:
    """The module of a use case's pipeline, by convention ``pipeline/<use case>_pipeline.py``."""
    return f"{PIPELINE_PACKAGE}.{get_usecase(usecase).name}_pipeline"


def build_pipeline(usecase: str, settings: KfpSettings) -> Any:
    """The use case's ``@dsl.pipeline`` (a KFP GraphComponent), its components in the image."""
    name = pipeline_module(usecase)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ConfigError(f"no KFP pipeline for use case {usecase!r} ({name})") from None
    return module.build_pipeline(settings.image)


def pipeline_arguments(cfg: Any) -> dict[str, Any]:
    """Every setting of the config as a pipeline argument, so a run reproduces the config."""
    return to_params(cfg)


def compile_pipeline(usecase: str, settings: KfpSettings, path: str | Path) -> Path:
    """Compile one pipeline to KFP IR YAML at ``path`` (a generated build output)."""
    from kfp import compiler

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror}") from None
    compiler.Compiler().compile(build_pipeline(usecase, settings), package_path=str(path))
    return path


def compile_all(
    out_dir: str | Path, settings: KfpSettings, usecases: tuple[str, ...]
) -> list[Path]:
    return [compile_pipeline(u, settings, Path(out_dir) / f"{u}_pipeline.yaml") for u in usecases]
