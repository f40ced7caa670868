"""What counts as a stored model, for every tool's evidence read-back.

A trained model is its safetensors weights (plus an architecture/config JSON); a pre-trained
checkpoint used as it is (sentiment without fine-tuning) is stored *by reference*: a
``reference.json`` with its name, revision and the weights' sha256, never a copy of the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

WEIGHTS_SUFFIX = ".safetensors"
REFERENCE_FILE = "reference.json"


def holds_model(files: Mapping[str, object]) -> bool:
    """A model folder's listing (file name or path -> bytes, None where the store does not
    say) holds a model: non-empty weights, or the reference to a checkpoint."""
    for name, size in files.items():
        leaf = Path(str(name)).name
        if (leaf.endswith(WEIGHTS_SUFFIX) or leaf == REFERENCE_FILE) and _non_empty(size):
            return True
    return False


def _non_empty(size: object) -> bool:
    """A size as a store reports it (int, a numeric string, or None when it does not say)."""
    if size is None:
        return True
    try:
        return int(str(size)) > 0
    except ValueError:
        return False


def folder_holds_model(folder: Path | None) -> bool:
    """:func:`holds_model` for a folder on disk."""
    if folder is None or not folder.is_dir():
        return False
    return holds_model({p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()})
