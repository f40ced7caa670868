"""Helpers the components call while they run (imported inside their bodies).

KFP compiles only a component's own source into the pipeline, so anything longer than a few
lines lives here, in the installed package the component's image provides. No kfp import:
artifacts are duck-typed (``.path``, ``.metadata``, ``.log_metric``).
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlopsbench.usecases.common.params import config_from_params, config_params

C = TypeVar("C")

HEADLINE_METRICS = ("accuracy", "macro_f1", "loss")


def config_from_settings(config_class: type[C], settings: Mapping[str, Any]) -> C:
    """The run's config from the ``settings`` dict the pipeline hands every component.

    Values of a dict input that came from pipeline parameters may arrive as text ('5.0',
    'false': kfp.local substitutes them into the dict as strings), so each is typed back like
    its config field; unset markers ("" or 0) become None and the config validates itself.
    """
    kinds = {spec.name: spec.kind for spec in config_params(config_class)}
    typed = {name: _typed(kinds.get(name, str), value) for name, value in settings.items()}
    return config_from_params(config_class, typed)


def _typed(kind: type, value: Any) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"
    if kind is int:
        return int(float(value))  # "5.0": KFP numbers are doubles
    return kind(value)


def describe(returned: Mapping[str, Any], artifact_path: str | Path) -> dict[str, Any]:
    """What a core stage returned, as the output artifact's metadata (KFP records it).

    Paths inside the artifact become relative to it: the next step finds them under its own
    input's path, since on a cluster every pod mounts artifacts somewhere else. Lists (the
    per-epoch history, the confusion matrix) are left out: they go to Metrics outputs.
    """
    root = Path(artifact_path).resolve()
    return {k: _relative(v, root) for k, v in returned.items() if not isinstance(v, list)}


def _relative(value: Any, root: Path) -> Any:
    if isinstance(value, Mapping):
        return {k: _relative(v, root) for k, v in value.items() if not isinstance(v, list)}
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value).resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else value
    return value


def file_in(artifact: Any, key: str) -> str:
    """The absolute path of the file or folder ``describe`` recorded under ``key``."""
    path = optional_file_in(artifact, key)
    if path is None:
        raise ValueError(f"input artifact {artifact.name!r} records no {key!r}")
    return path


def optional_file_in(artifact: Any, key: str) -> str | None:
    """``file_in``, or None when the producer recorded none (no history without training)."""
    relative = artifact.metadata.get(key)
    return os.path.join(artifact.path, relative) if relative else None


def keep_in_artifact(folder: str | Path, artifact_path: str | Path) -> str:
    """``folder`` as part of the artifact: a folder elsewhere (a hub cache snapshot, a local
    checkpoint) is copied in, following symlinks, since only the artifact reaches the next
    step. Returns the folder's path inside the artifact."""
    folder, root = Path(folder).resolve(), Path(artifact_path).resolve()
    if folder.is_relative_to(root):
        return str(folder)
    target = root / "model"
    shutil.copytree(folder, target, dirs_exist_ok=True)
    return str(target)


def trial_result(artifact: Any) -> dict[str, Any]:
    """A sweep trial's ``run_trial`` result from the ``Model`` artifact holding it.

    The metadata went through a protobuf Struct, where every number is a double: the trial's
    index and batch size become ints again; paths are this pod's, under the artifact.
    """
    meta = artifact.metadata
    trial = dict(meta["trial"])
    for key in ("index", "batch_size"):
        trial[key] = int(trial[key])
    return {
        **{k: v for k, v in meta.items() if k != "trial"},
        "trial": trial,
        "metrics": scalar_metrics(meta["metrics"]),
        "model_dir": file_in(artifact, "model_dir"),
        "history_path": optional_file_in(artifact, "history_path"),
    }


def keep_trial(result: Mapping[str, Any], artifact_path: str | Path) -> dict[str, Any]:
    """Copy a trial's folder (model, history, metrics) into ``artifact_path``; return the
    result with its paths there, as that artifact's metadata. The fan-in's own output is all
    the next step receives on a cluster, not the collected trial artifacts."""
    source = Path(result["model_dir"]).parent
    target = Path(artifact_path) / source.name
    shutil.copytree(source, target, dirs_exist_ok=True)
    moved = {
        key: str(target / Path(value).relative_to(source))
        if key in ("model_dir", "history_path") and value
        else value
        for key, value in result.items()
    }
    return describe(moved, artifact_path)


def log_history(metrics: Any, history: Sequence[Mapping[str, Any]]) -> None:
    """Per-epoch scalars with flat names (``epoch1_train_loss``): KFP Metrics hold scalars."""
    for name, value in history_metrics(history).items():
        metrics.log_metric(name, value)


def history_metrics(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for number, row in enumerate(history, start=1):
        epoch = int(row.get("epoch", number))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                flat[f"epoch{epoch}_{key}"] = float(value)
    return flat


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def publish_evaluation(
    returned: Mapping[str, Any],
    *,
    labels: Sequence[str],
    title: str,
    metrics: Any,
    confusion: Any,
    evaluation: Any,
    report: Any,
) -> None:
    """What ``evaluate_model`` returned, as KFP's outputs: Metrics, the confusion matrix, the
    evaluation files' metadata and an HTML report for the UI."""
    for name, value in scalar_metrics(returned["metrics"]).items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(list(labels), returned["confusion"])
    evaluation.metadata.update(describe(returned, evaluation.path))
    images = {k: v for k, v in returned["artifacts"].items() if str(v).endswith(".png")}
    write_report(report.path, title, returned["metrics"], returned["gate"], images)


def write_report(
    path: str | Path,
    title: str,
    metrics: Mapping[str, Any],
    gate: Mapping[str, Any],
    images: Mapping[str, str],
) -> Path:
    """A self-contained HTML page (PNGs inlined) for the KFP UI's HTML visualisation."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{float(metrics[k]):.4f}</td></tr>"
        for k in HEADLINE_METRICS
        if k in metrics
    )
    verdict = "passed" if gate.get("passed") else "FAILED"
    figures = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{_b64(png)}'/>"
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in images.items()
        if Path(png).is_file()
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}img{max-width:480px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>"
        f"<p>Quality gate {verdict}: {html.escape(str(gate.get('metric', 'accuracy')))} "
        f"{float(gate.get('value', 0.0)):.4f} (threshold {float(gate.get('threshold', 0.0)):.4f})"
        f"</p>{figures}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _b64(png: str) -> str:
    return base64.b64encode(Path(png).read_bytes()).decode("ascii")
