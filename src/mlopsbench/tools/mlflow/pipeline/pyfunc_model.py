"""The pyfunc model of every logged mlopsbench model, as MLflow "models from code".

``mlflow.pyfunc.log_model(python_model=<this file>, ...)``: MLflow copies this file into the
model folder and runs it on load, and :func:`mlflow.models.set_model` below hands MLflow the
:class:`CoreModel`. Nothing is pickled. The model folder also holds

- ``artifacts/model/``: the core's saved model (safetensors + JSON, or a Hugging Face folder);
- ``artifacts/mlopsbench_pyfunc.json``: the use case's serving module and the run's inference
  settings (batch size, truncation...);
- ``code/mlopsbench/``: that serving module and the core modules it imports (MLflow puts
  ``code/`` on ``sys.path``), so the model loads where only its ``requirements.txt`` is
  installed and still runs the core's one implementation of inference.

The model does not know the use cases: the serving module named in the spec does the work
(``Predictor(model_dir, settings).predict(model_input)``). Keep this file free of module-level
imports of mlopsbench (and of torch): MLflow runs it at logging time too.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

MODEL_ARTIFACT = "model"  # the core's model folder
SPEC_ARTIFACT = "spec"  # JSON: {"usecase", "serving_module", "settings"}


class _ServedModel:
    """Loads the use case's ``Predictor`` once, then hands it every batch it is asked about.

    ``predictor`` is the core object itself: ``load_model(uri).unwrap_python_model().predictor``
    is what the pipeline hands the core's evaluation, so the registered version is scored by the
    core's one implementation (metrics, confusion matrix, embeddings) in one pass.
    """

    def load_context(self, context: Any) -> None:
        spec = _read_spec(Path(context.artifacts[SPEC_ARTIFACT]))
        serving = importlib.import_module(spec["serving_module"])
        self.predictor = serving.Predictor(context.artifacts[MODEL_ARTIFACT], spec["settings"])

    # No type hints on model_input: the signature given at logging time is the schema (MLflow
    # would read a hint as one, and refuses ``Any``).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return self.predictor.predict(model_input)


class CoreModel(_ServedModel, PythonModel):
    # predict comes from the mixin: PythonModel.__init_subclass__ inspects only a predict
    # defined in the subclass itself, and would warn that it has no type hints.
    __doc__ = _ServedModel.__doc__


def _read_spec(path: Path) -> dict[str, Any]:
    from mlopsbench.errors import DataError

    try:
        spec = json.loads(path.read_text())
        return {"serving_module": str(spec["serving_module"]), "settings": spec.get("settings")}
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"unreadable model spec {path.name} in {path.parent}") from None


mlflow.models.set_model(CoreModel())
