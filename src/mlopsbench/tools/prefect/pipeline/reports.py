"""Prefect artifacts of a run: the training history, the evaluation report and its plots.

Artifacts live in Prefect's database, next to the flow run, and show on the run's page and
(keyed ones) on the Artifacts page, where each new run adds a version of the same key. The
plots are embedded as ``data:`` URLs, so they stay viewable after the run's files are gone.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

PLOTS = {
    "confusion_matrix": "Confusion matrix",
    "tsne": "t-SNE of penultimate-layer embeddings",
    "training_curve": "Training curve",
}


def artifact_key(*parts: str) -> str:
    """An artifact key as Prefect accepts it: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def publish_history(history: Sequence[Mapping[str, float]], key: str) -> None:
    """The per-epoch metrics as a table artifact (nothing when the model was not trained)."""
    if history:
        create_table_artifact(
            table=[dict(row) for row in history],
            key=key,
            description="Per-epoch training metrics",
        )


def publish_trials(rows: Sequence[Mapping[str, Any]], key: str) -> None:
    """A sweep's trials, best first (model, learning rate, batch size, accuracy, loss)."""
    create_table_artifact(
        table=[dict(row) for row in rows], key=key, description="Sweep trials, best first"
    )


def publish_evaluation(
    evaluation: Mapping[str, Any], key: str, title: str, facts: Mapping[str, Any]
) -> None:
    """The evaluation as a markdown report, and each plot as an image artifact."""
    create_markdown_artifact(
        markdown=_report(title, evaluation, facts),
        key=key,
        description="Metrics, quality gate and per-class scores",
    )
    for name, label in PLOTS.items():
        path = evaluation["artifacts"].get(name)
        if path and Path(path).is_file():
            create_image_artifact(
                image_url=_data_url(Path(path)),
                key=artifact_key(key, name),
                description=label,
            )


def _report(title: str, evaluation: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    metrics = evaluation["metrics"]
    lines = [
        f"# {title}",
        f"**Accuracy {metrics['accuracy']:.4f}** · macro F1 {metrics.get('macro_f1', 0.0):.4f}",
        _gate_line(evaluation["gate"]),
        "\n".join(f"- {name}: `{value}`" for name, value in facts.items()),
        "## Per-class metrics",
        _per_class_table(evaluation["artifacts"].get("evaluation")),
    ]
    return "\n\n".join(line for line in lines if line)


def _gate_line(gate: Mapping[str, Any]) -> str:
    verdict = "passed" if gate["passed"] else "FAILED"
    return (
        f"Quality gate {verdict}: {gate['metric']} {gate['value']:.4f} "
        f"(threshold {gate['threshold']:.2f})"
    )


def _per_class_table(report_path: str | None) -> str:
    if not report_path or not Path(report_path).is_file():
        return ""
    per_class = json.loads(Path(report_path).read_text()).get("per_class", {})
    rows = [
        f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} "
        f"| {row['support']} |"
        for name, row in per_class.items()
    ]
    header = "| class | precision | recall | f1 | support |\n|---|---:|---:|---:|---:|"
    return "\n".join([header, *rows])


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
