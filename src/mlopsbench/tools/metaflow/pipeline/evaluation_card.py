"""The evaluation card the flows draw on their ``evaluate`` step (``@card(type="blank")``).

Headline metrics and the quality gate, a per-class table and the core's plots (confusion
matrix, t-SNE, training curve), from what the core's ``evaluate_model`` stage returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLOTS = (
    ("confusion_matrix", "Confusion matrix"),
    ("tsne", "t-SNE of penultimate-layer embeddings"),
    ("training_curve", "Training curve"),
)


def fill_evaluation_card(
    card: Any, *, title: str, evaluation: Mapping[str, Any], facts: Mapping[str, Any]
) -> None:
    """Append the evaluation to a card (``current.card["evaluation"]``)."""
    from metaflow.cards import Image, Markdown, Table

    card.append(Markdown(_summary(title, evaluation, facts)))
    card.append(Markdown("## Per-class metrics"))
    headers = ["class", "precision", "recall", "f1", "support"]
    card.append(Table(_per_class_rows(evaluation), headers=headers))
    for key, label in PLOTS:
        path = evaluation["artifacts"].get(key)
        if path and Path(path).is_file():
            card.append(Markdown(f"## {label}"))
            card.append(Image(Path(path).read_bytes(), label=label))


def _summary(title: str, evaluation: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    metrics, gate = evaluation["metrics"], evaluation["gate"]
    loss = f" · loss {metrics['loss']:.4f}" if "loss" in metrics else ""
    verdict = "passed" if gate["passed"] else "**FAILED**"
    return "\n\n".join(
        [
            f"# {title}",
            f"**Accuracy {metrics['accuracy']:.4f}** · macro F1 "
            f"{metrics.get('macro_f1', 0.0):.4f}{loss}",
            f"Quality gate {verdict}: {gate['metric']} {gate['value']:.4f} "
            f"(threshold {gate['threshold']:.2f})",
            "\n".join(f"- {key}: `{value}`" for key, value in facts.items()),
        ]
    )


def _per_class_rows(evaluation: Mapping[str, Any]) -> list[list[Any]]:
    report_path = evaluation["artifacts"].get("evaluation")
    if not report_path or not Path(report_path).is_file():
        return []
    per_class = json.loads(Path(report_path).read_text()).get("per_class", {})
    return [
        [name, *(f"{row[k]:.3f}" for k in ("precision", "recall", "f1")), str(row["support"])]
        for name, row in per_class.items()
    ]


def add_trials_table(card: Any, rows: list[dict[str, Any]]) -> None:
    """Append a sweep's trials (``trial_table`` rows, best first) to a card."""
    from metaflow.cards import Markdown, Table

    headers = ["trial", "model", "lr", "batch size", "accuracy", "loss", "seconds"]
    card.append(Markdown("## Trials (best first)"))
    card.append(
        Table(
            [
                [
                    row["name"],
                    row["model"],
                    row["lr"],
                    row["batch_size"],
                    f"{row['accuracy']:.4f}",
                    f"{row['loss']:.4f}",
                    f"{row['seconds']:.1f}",
                ]
                for row in rows
            ],
            headers=headers,
        )
    )
