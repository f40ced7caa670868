"""Save and load digit models without pickling the module: safetensors + a small JSON."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from mlopsbench.errors import DataError
from mlopsbench.result import write_json_atomic
from mlopsbench.usecases.digits.config import canonical_model_name
from mlopsbench.usecases.digits.models import build_model

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"


def save_model(model: nn.Module, model_name: str, directory: str | Path) -> Path:
    """Write ``model.safetensors`` (state_dict) and ``model.json`` (architecture) to a folder."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Written under a temporary name, then renamed: a crash never leaves half a weights file.
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp))
    tmp.replace(directory / WEIGHTS_FILE)
    spec = {
        "architecture": canonical_model_name(model_name),
        "format": "safetensors-state_dict",
        "input": "uint8 images (N, 28, 28), MNIST-normalised inside the core",
        "num_classes": 10,
    }
    write_json_atomic(directory / SPEC_FILE, spec)
    return directory


def load_model(directory: str | Path) -> nn.Module:
    """Rebuild the architecture named in ``model.json`` and load its safetensors weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    spec_path, weights_path = directory / SPEC_FILE, directory / WEIGHTS_FILE
    if not spec_path.is_file() or not weights_path.is_file():
        raise DataError(
            f"no saved digits model in {directory} (needs {SPEC_FILE} + {WEIGHTS_FILE})"
        )
    try:
        spec = json.loads(spec_path.read_text())
        model = build_model(spec["architecture"])
        model.load_state_dict(load_file(str(weights_path)))
    except (json.JSONDecodeError, KeyError, SafetensorError, RuntimeError) as exc:
        raise DataError(f"corrupt digits model in {directory}: {exc}") from None
    model.eval()
    return model
