"""What a core stage returned, as the metadata Dagster shows and keeps with a materialisation.

Numbers stay numbers (the UI plots them across materialisations; ``seconds`` is the time the
stage itself reported), the evaluation's headline ``metrics`` are lifted to the top for the same
reason (per-class ones, ``f1_3``, stay in the ``metrics`` JSON: 30 rows would bury the rest),
``*_path`` / ``*_dir`` entries are paths, PNG plots are shown inline as Markdown images, and
lists and dicts (history, gate, confusion matrix, artifact paths) are kept as JSON.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import MetadataValue

PER_CLASS = re.compile(r"(precision|recall|f1)_")


def stage_metadata(result: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata for one materialisation from the dict its core stage returned."""
    metadata: dict[str, Any] = {}
    for key, value in result.items():
        if value is None:
            continue
        if key == "metrics":
            metadata.update(headline_metrics(value))
        if key == "artifacts":
            metadata.update(plot_previews(value))
        metadata[key] = _value(key, value)
    return metadata


def headline_metrics(metrics: Mapping[str, float]) -> dict[str, Any]:
    """Accuracy, macro F1, loss: the numbers to follow from one materialisation to the next."""
    return {
        name: MetadataValue.float(float(value))
        for name, value in metrics.items()
        if not PER_CLASS.match(name)
    }


def _value(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return MetadataValue.bool(value)
    if isinstance(value, int):
        return MetadataValue.int(value)
    if isinstance(value, float):
        return MetadataValue.float(value)
    if isinstance(value, str) and key.endswith(("_path", "_dir")):
        return MetadataValue.path(value)
    if isinstance(value, str):
        return MetadataValue.text(value)
    return MetadataValue.json(value)


def plot_previews(artifacts: Mapping[str, str]) -> dict[str, Any]:
    """The PNG plots among a stage's files, each as an inline Markdown image."""
    previews = {}
    for name, path in artifacts.items():
        if str(path).endswith(".png") and Path(path).is_file():
            encoded = base64.b64encode(Path(path).read_bytes()).decode()
            previews[f"{name}_plot"] = MetadataValue.md(
                f"![{name}](data:image/png;base64,{encoded})"
            )
    return previews
