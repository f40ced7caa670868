"""What both flows share: parameters from the core config, step folders, files <-> artifacts.

Only light imports at module level: Metaflow imports the flow file (and so this module) in the
launching process and again in every step process, so anything heavy here is paid per step.

Steps hand over through Metaflow artifacts (bytes, dicts), not through paths: a step restores
the files it needs into its own folder. Steps then never depend on the machine that ran the
previous one (what ``--with kubernetes`` or ``resume`` needs), and no DataLoader or
``nn.Module`` is ever pickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from metaflow import FlowMutator, Parameter, current

from mlopsbench.usecases.common.params import config_from_params, config_params

C = TypeVar("C")

STEPS_DIR = "steps"  # ./steps/<run id>/<step>/ holds each step's output files


class config_parameters(FlowMutator):
    """``@config_parameters(DigitsConfig)`` on a flow: one ``Parameter`` per config setting.

    Names, defaults, types and help text come from the core's config dataclass, so
    ``run --help`` always shows the core's own defaults. A setting that may be None in the
    config ("use the derived default") gets its empty value instead (``""``, ``0``), which
    :func:`flow_config` turns back into None.
    """

    def init(self, config_class: type) -> None:
        self.config_class = config_class

    def pre_mutate(self, mutable_flow: Any) -> None:
        for spec in config_params(self.config_class):
            parameter = Parameter(
                spec.name, default=spec.tool_default, type=spec.kind, help=spec.description
            )
            mutable_flow.add_parameter(spec.name, parameter)


def flow_config(flow: Any, config_class: type[C]) -> C:
    """The core config rebuilt from the flow's parameter values (the config validates them)."""
    values = {spec.name: getattr(flow, spec.name) for spec in config_params(config_class)}
    return config_from_params(config_class, values)


def mlflow_tracking_uri(parameter: str) -> str:
    """The flow's ``mlflow_uri`` parameter, else ``$MLFLOW_TRACKING_URI``; empty: no MLflow."""
    return (parameter or os.environ.get("MLFLOW_TRACKING_URI", "")).strip()


def step_dir() -> Path:
    """The running step's folder for its files: ``./steps/<run id>/<step name>/``."""
    path = Path.cwd() / STEPS_DIR / str(current.run_id) / str(current.step_name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_to_artifact(path: str | Path) -> bytes:
    """A file's content, to keep as an artifact."""
    return Path(path).read_bytes()


def file_from_artifact(data: bytes, path: Path) -> str:
    """Write an artifact's bytes back to a file (atomically); return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return str(path)


def json_from_artifact(value: Any, path: Path) -> str:
    """Write an artifact (a list or dict) as a JSON file; return its path."""
    return file_from_artifact(json.dumps(value).encode(), path)


def folder_to_artifact(directory: str | Path) -> dict[str, bytes]:
    """Every file of a (flat) folder as ``name -> bytes``: a saved model as one artifact."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}


def folder_from_artifact(files: Mapping[str, bytes], directory: Path) -> str:
    """Inverse of :func:`folder_to_artifact`: write the files back into ``directory``."""
    for name, data in files.items():
        file_from_artifact(data, directory / Path(name).name)  # .name: never outside the folder
    return str(directory)
