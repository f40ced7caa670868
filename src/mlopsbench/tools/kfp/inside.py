"""Helpers that run inside KFP components (imported in the component body, never by the parent).

KFP serialises only a component's own source, so anything longer than a few lines lives here,
in the installed package the component's image (or, locally, the virtualenv) provides:
timing stamps, the HTML report and the promotion record. No kfp import: artifacts are duck-typed
(``.path``, ``.uri``, ``.metadata``).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from mlopsbench.result import write_json_atomic

TIMING_KEY = "mlopsbench_timing"
PROMOTION_FILE = "promotion.json"


def process_started() -> float:
    """Epoch seconds at which this component's Python process started."""
    import psutil

    return float(psutil.Process().create_time())


def stamp(artifact: Any, stage: str, entered: float, core_seconds: float) -> None:
    """Record where this component's time went in an output artifact's metadata.

    ``process_started -> entered`` is interpreter start + KFP executor + imports before the body;
    ``core_seconds`` is the core stage call; the rest of ``entered -> finished`` is output writing.
    """
    artifact.metadata[TIMING_KEY] = {
        "stage": stage,
        "process_started": process_started(),
        "entered": entered,
        "core_seconds": core_seconds,
        "finished": time.time(),
    }


def adopt_folder(folder: str | Path, artifact_path: str | Path, name: str) -> str:
    """Make ``folder`` part of the artifact; return its path relative to the artifact.

    A folder the core wrote inside the artifact stays where it is; one elsewhere (a hub cache
    snapshot, a local checkpoint) is copied in, following symlinks, since only the artifact
    travels to the next step.
    """
    import os
    import shutil

    folder, artifact_path = Path(folder).resolve(), Path(artifact_path).resolve()
    if not folder.is_relative_to(artifact_path):
        target = artifact_path / name
        shutil.copytree(folder, target, dirs_exist_ok=True)
        folder = target
    return os.path.relpath(folder, artifact_path)


def history_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    """Per-epoch scalars with flat names (``epoch1_train_loss``): KFP Metrics hold scalars only."""
    flat: dict[str, float] = {}
    for row in history:
        epoch = int(row.get("epoch", len(flat) + 1))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                flat[f"epoch{epoch}_{key}"] = float(value)
    return flat


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def write_report(
    path: str | Path,
    title: str,
    metrics: dict[str, Any],
    gate: dict[str, Any],
    images: dict[str, str],
) -> Path:
    """A self-contained HTML report (PNGs inlined) for the KFP UI's HTML visualisation."""
    headline = {k: metrics[k] for k in ("accuracy", "macro_f1", "loss") if k in metrics}
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{float(v):.4f}</td></tr>" for k, v in headline.items()
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


def promote(
    *,
    usecase: str,
    run_name: str,
    mlflow_uri: str,
    dataset: dict[str, Any],
    model_uri: str,
    model_path: str,
    model_meta: dict[str, Any],
    metrics: dict[str, Any],
    evaluation_dir: str,
    out_dir: str,
) -> dict[str, Any]:
    """Write the promotion record and, when an MLflow URI is given, log the run to MLflow.

    Paths come from this component's own input artifacts (``model_path``), never from the
    producer's metadata: on a cluster each pod mounts artifacts somewhere else.
    """
    model_dir = str(Path(model_path) / model_meta.get("model_subdir", "model"))
    record: dict[str, Any] = {
        "usecase": usecase,
        "run_name": run_name,
        "model_uri": model_uri,
        "model_dir": model_dir,
        "metrics": scalar_metrics(metrics),
        "dataset": {k: dataset[k] for k in ("source", "digest") if k in dataset},
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mlflow": None,
    }
    if mlflow_uri:
        record["mlflow"] = _log_to_mlflow(
            mlflow_uri, usecase, run_name, dataset, model_path, model_meta, metrics, evaluation_dir
        )
    write_json_atomic(Path(out_dir) / PROMOTION_FILE, record)
    return record


def _log_to_mlflow(
    uri: str,
    usecase: str,
    run_name: str,
    dataset: dict[str, Any],
    model_path: str,
    model_meta: dict[str, Any],
    metrics: dict[str, Any],
    evaluation_dir: str,
) -> dict[str, Any]:
    """Through the shared tracking helper: the KFP tool never talks to MLflow itself."""
    try:
        from mlopsbench.tracking import log_run_to_mlflow
    except ImportError as exc:
        from mlopsbench.errors import ToolUnavailableError

        raise ToolUnavailableError(f"MLflow logging is not available: {exc}") from None

    history_path = Path(model_path) / model_meta.get("history_file", "history.json")
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    files = {p.name: str(p) for p in sorted(Path(evaluation_dir).glob("*")) if p.is_file()}
    info = log_run_to_mlflow(
        uri,
        tool="kfp",
        usecase=usecase,
        run_name=run_name or f"kfp-{usecase}",
        params=dict(model_meta.get("params", {})),
        metrics=scalar_metrics(metrics),
        history=history,
        artifacts=files,
        model_dir=str(Path(model_path) / model_meta.get("model_subdir", "model")),
        dataset={k: v for k, v in dataset.items() if k != TIMING_KEY},
        tags={"orchestrator": "kfp", "promoted": "true"},
    )
    return dict(info)
