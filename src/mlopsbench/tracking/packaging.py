"""The core's saved model as a portable MLflow pyfunc model: what ``mlflow.pyfunc.log_model`` needs.

MLflow "models from code": ``python_model`` is the file ``tools/mlflow/pipeline/pyfunc_model.py``
(run on load, nothing pickled), which hands prediction to the use case's ``serving`` module.
:func:`packaged_model` stages the rest, for the MLflow pipeline's own ``log_model`` call and for
:func:`log_core_model` (the other tools' logging):

- ``artifacts``: the core's model folder (safetensors + JSON, or a Hugging Face folder) and
  :data:`PYFUNC_SPEC` (serving module and the run's inference settings; MLflow's
  ``model_config`` would also become run params and could clash with the config's);
- ``code_paths``: the core modules serving needs (:mod:`mlopsbench.tracking.codepaths`);
- ``signature`` from the use case's ``input_kind``, ``input_example`` from its ``test_inputs``;
- ``pip_requirements``: pinned, given explicitly (inferring them costs ~13 s);
- ``metadata``: for a pre-trained checkpoint used as it is, the reference it is logged by.

A model folder may hold a checkpoint's weights (safetensors) or only :data:`REFERENCE_FILE`, a
pre-trained checkpoint named by name, revision and the sha256 of its weights (written by the
sentiment core for a model it did not fine-tune): then the logged model carries that reference
(a few hundred bytes, also in the MLmodel file's ``metadata``), never the weights, and resolves
it to the local folder or the Hugging Face cache when it loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.tracking.codepaths import (
    PACKAGE_ROOT,
    core_modules,
    imported_libraries,
    stage_core_code,
)
from mlopsbench.tracking.store import import_mlflow
from mlopsbench.usecases.common.modelfiles import REFERENCE_FILE  # read as plain JSON

# The models-from-code file, found by path: importing mlopsbench.tools.mlflow from here would tie
# every tool that logs through this package to the MLflow tool (import-linter's independence).
PYFUNC_MODEL_FILE = PACKAGE_ROOT / "tools" / "mlflow" / "pipeline" / "pyfunc_model.py"
PYFUNC_SPEC = "mlopsbench_pyfunc.json"  # artifact: serving module + inference settings
MODEL_ARTIFACT, SPEC_ARTIFACT = "model", "spec"  # the names pyfunc_model.py reads
# What a served model may need, in the order requirements.txt lists them: MLflow and pandas
# (pyfunc's DataFrame inputs) always; the others when the shipped code imports them (the core's
# data loaders import more, e.g. scikit-learn, but prediction never runs them).
SERVING_LIBRARIES = ("mlflow", "torch", "numpy", "pandas", "safetensors", "transformers")
ALWAYS_REQUIRED = ("mlflow", "pandas")
# Pinned together with a library: a saved tokenizer loads with the tokenizers it was made with.
PINNED_WITH = {"transformers": ("tokenizers",)}


@dataclass(frozen=True)
class PackagedModel:
    """The ``mlflow.pyfunc.log_model`` arguments besides ``name`` and ``python_model``, staged in
    a temporary folder that lives as long as the :func:`packaged_model` block."""

    artifacts: dict[str, str]
    code_paths: list[str]
    signature: Any
    input_example: Any
    pip_requirements: list[str]
    metadata: dict[str, Any] | None = None

    def log_model_kwargs(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@contextmanager
def packaged_model(
    usecase: str,
    model_dir: str | Path,
    data_path: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[PackagedModel]:
    """Stage the core's ``model_dir`` for ``mlflow.pyfunc.log_model`` (see the module docstring).

    ``data_path`` (the ``prepare_data`` file) supplies the input example; ``settings`` are the
    run's inference settings (``serving.settings_of(cfg)``), stored with the model.
    """
    from mlopsbench.usecases.registry import get_usecase

    case = get_usecase(usecase)
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(f"model folder {model_dir} does not exist")
    with tempfile.TemporaryDirectory(prefix="mlopsbench-model-") as folder:
        staging = Path(folder)
        spec = staging / PYFUNC_SPEC
        spec.write_text(json.dumps(model_spec(case, settings), indent=2))
        # Staged as "model" so MLflow stores it as artifacts/model/, whatever the core's folder
        # is called (hard links: no copy of the weights; MLflow refuses symlinks).
        weights = shutil.copytree(model_dir, staging / "model", copy_function=_link_or_copy)
        # MLflow "downloads" each local artifact with a progress bar: noise in every tool's log.
        with _env_default("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
            yield PackagedModel(
                artifacts={MODEL_ARTIFACT: str(weights), SPEC_ARTIFACT: str(spec)},
                code_paths=[str(stage_core_code(case.name, staging / "code"))],
                signature=model_signature(case.input_kind),
                input_example=input_example(case, data_path),
                pip_requirements=pip_requirements(case.name),
                metadata=model_metadata(model_dir),
            )


def log_core_model(
    usecase: str,
    model_dir: str | Path,
    *,
    data_path: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    name: str = "model",
) -> Any:
    """Log the core's model folder as a portable pyfunc model of the active run; return ModelInfo."""
    import_mlflow()
    import mlflow.pyfunc

    with packaged_model(usecase, model_dir, data_path, settings) as package:
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(PYFUNC_MODEL_FILE), **package.log_model_kwargs()
        )


def model_metadata(model_dir: Path) -> dict[str, Any] | None:
    """``{"pretrained_reference": ...}`` for a model folder that refers to a checkpoint."""
    reference = model_dir / REFERENCE_FILE
    if not reference.is_file():
        return None
    try:
        return {"pretrained_reference": json.loads(reference.read_text(encoding="utf-8"))}
    except (OSError, ValueError):
        raise DataError(f"unreadable model reference {reference}") from None


def model_spec(case: Any, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the model file needs to serve: the module with ``Predictor`` and its settings."""
    return {
        "usecase": case.name,
        "serving_module": case.serving_module,
        "settings": dict(settings or {}),
    }


def serving_settings(usecase: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The inference settings a served model keeps, from a run's flat params (config keys)."""
    from mlopsbench.usecases.registry import get_usecase

    case = get_usecase(usecase)
    known = {spec.name for spec in case.params()}
    cfg = case.config({k: v for k, v in params.items() if k in known})
    return dict(case.serving.settings_of(cfg))


# ------------------------------------------------------------------------------------------
# signature, input example, requirements
# ------------------------------------------------------------------------------------------


def model_signature(input_kind: str) -> Any:
    """Images: uint8 (-1, 28, 28) -> int64 classes; texts: a ``text`` column -> ``label``."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    signatures = {
        "images": lambda: ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("uint8"), (-1, 28, 28))]),
            outputs=Schema([TensorSpec(np.dtype("int64"), (-1,))]),
        ),
        "texts": lambda: ModelSignature(
            inputs=Schema([ColSpec("string", "text")]),
            outputs=Schema([ColSpec("long", "label")]),
        ),
    }
    if input_kind not in signatures:
        raise ConfigError(f"no model signature for input kind {input_kind!r}")
    return signatures[input_kind]()


def input_example(case: Any, data_path: str | Path | None, rows: int = 2) -> Any:
    """The first ``rows`` test inputs as the served model sees them (``test_inputs``), stored
    with the model; a stand-in of the right kind when the data file is not at hand."""
    if not data_path or not Path(data_path).is_file():
        return stand_in_example(case.input_kind, rows)
    model_input = case.stages.test_inputs(data_path).model_input
    return model_input.head(rows) if hasattr(model_input, "head") else model_input[:rows]


def stand_in_example(input_kind: str, rows: int = 2) -> Any:
    """Blank images / two short reviews: what the signature describes, without the data."""
    import numpy as np
    import pandas as pd

    texts = ["A moving, beautifully acted film.", "Dull and far too long."] * rows
    examples = {
        "images": lambda: np.zeros((rows, 28, 28), dtype=np.uint8),
        "texts": lambda: pd.DataFrame({"text": texts[:rows]}),
    }
    return examples[input_kind]()


def pip_requirements(usecase: str) -> list[str]:
    """Pinned requirements of the logged model: what the shipped code needs to load and predict.

    :data:`SERVING_LIBRARIES` that the shipped core modules import (plus MLflow and pandas), not
    mlopsbench, which travels as code. Local version labels are dropped (``torch==2.13.0``, not
    ``2.13.0+cpu``, which only the PyTorch index knows): any build of the release will do.
    """
    from importlib import metadata

    imported = imported_libraries(core_modules(usecase))
    needed = [lib for lib in SERVING_LIBRARIES if lib in imported or lib in ALWAYS_REQUIRED]
    needed += [extra for lib in needed for extra in PINNED_WITH.get(lib, ())]
    requirements = []
    for dist in needed:
        try:
            requirements.append(f"{dist}=={metadata.version(dist).split('+', 1)[0]}")
        except metadata.PackageNotFoundError:
            requirements.append(dist)
    return requirements


@contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """Set an environment variable the user has not set, for the block only."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not supported
        shutil.copy2(source, target)
