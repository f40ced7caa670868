"""What both pipelines share: parameters from the core config, step folders, file hand-overs.

Steps hand files over as artifacts (folders kept as archives in the artifact store), never as
paths into another step's folder: a step then runs wherever the orchestrator puts it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zenml import get_step_context

from mlopsbench.usecases.common.params import (
    ParamSpec,
    apply_overrides,
    config_from_params,
    config_params,
    flat_values,
)

STEPS_DIR = "steps"  # ./steps/<run name>/<step name>/ holds each step's output files
_KEYWORD = inspect.Parameter.KEYWORD_ONLY  # ZenML calls the entrypoint with keywords


def config_parameters(config_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make every setting of ``config_class`` a parameter of the decorated pipeline function.

    ZenML reads a pipeline's parameters from the function's signature and validates the values
    with pydantic, so the signature is generated from the config: the flat names of its
    ``to_dict()``, their types and defaults (an optional setting is ``kind | None``). The
    decorated function declares the config first, then its own parameters; it receives the
    config rebuilt from the values (which validates them), and hands it to its steps.
    """
    specs = config_params(config_class)

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(body, eval_str=True).parameters.values())[1:]  # after cfg
        parameters = [*map(_parameter, specs), *(p.replace(kind=_KEYWORD) for p in own)]
        signature = inspect.Signature(parameters, return_annotation=None)

        @functools.wraps(body)
        def pipeline(**values: Any) -> Any:
            settings = {spec.name: values.pop(spec.name, spec.default) for spec in specs}
            return body(config_from_params(config_class, settings), **values)

        pipeline.__signature__ = signature  # type: ignore[attr-defined]
        pipeline.__annotations__ = {p.name: p.annotation for p in parameters}
        pipeline.__doc__ = _with_settings(body.__doc__, specs)
        return pipeline

    return decorate


def _parameter(spec: ParamSpec) -> inspect.Parameter:
    kind = spec.kind | None if spec.optional else spec.kind
    return inspect.Parameter(spec.name, _KEYWORD, default=spec.default, annotation=kind)


def _with_settings(doc: str | None, specs: tuple[ParamSpec, ...]) -> str:
    """The docstring followed by one line per setting (its help text), for ``help()``."""
    lines = [f"    {spec.name}: {' '.join(spec.description.split())}" for spec in specs]
    return "\n".join([inspect.cleandoc(doc or ""), "", "Settings:", *lines])


def config_from_argv(config_class: type, argv: list[str]) -> Any:
    """The config from ``key=value`` words (``model=simple epochs=1``), typed like its fields."""
    defaults: Any = config_from_params(config_class, {})
    kinds = {spec.name: spec.kind.__name__ for spec in config_params(config_class)}
    return config_from_params(config_class, apply_overrides(flat_values(defaults), argv, kinds))


def dataset_metadata(prepared: Mapping[str, Any]) -> dict[str, Any]:
    """What ``prepare_data`` says about the data (source, digest, sizes), as artifact metadata."""
    return {k: v for k, v in prepared.items() if k not in ("data_path", "seconds")}


def tracking_uri(parameter: str) -> str:
    """The pipeline's ``mlflow_uri``, else ``$MLFLOW_TRACKING_URI``; empty: no MLflow."""
    return (parameter or os.environ.get("MLFLOW_TRACKING_URI", "")).strip()


def step_dir() -> Path:
    """The running step's folder for its files: ``./steps/<run name>/<step name>/``."""
    context = get_step_context()
    path = Path.cwd() / STEPS_DIR / context.pipeline_run.name / context.step_run.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def json_file(value: Any, path: Path) -> str:
    """Write an artifact's value (a list or dict) as a JSON file; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return str(path)


def folder_of(returned: Mapping[str, Any], key: str) -> Path:
    """The folder holding the file a stage returned under ``key``: the artifact to keep (a
    folder keeps the file's name, which the next step's reader may need)."""
    return Path(returned[key]).parent


def self_contained(folder: str | Path, workdir: Path) -> Path:
    """``folder`` with every file in it, ready to keep as an artifact.

    A checkpoint in the Hugging Face cache is a folder of symlinks into ``blobs/``: archived
    as is, the links would point nowhere. Such a folder is copied into ``workdir`` with the
    files the links point to; a folder of plain files is kept where it is.
    """
    folder = Path(folder)
    if not any(path.is_symlink() for path in folder.rglob("*")):
        return folder
    target = workdir / folder.name
    shutil.copytree(folder, target, dirs_exist_ok=True)  # follows symlinks: copies the files
    return target


def relocated(files: Mapping[str, str], folder: Path) -> dict[str, str]:
    """Paths a stage returned, moved into ``folder``: where this step received the same files
    as an artifact."""
    return {name: str(folder / Path(path).name) for name, path in files.items()}
