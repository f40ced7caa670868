"""The quality gate as an asset check, and promotion of a model that passed it.

The check is blocking: when it fails (severity ERROR), nothing downstream of the evaluation
materialises in that run — the model is not promoted to ``<use case>_champion`` and not
published to MLflow — and the run ends failed, with the check's verdict in the event log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, Failure, MaterializeResult, MetadataValue

from mlopsbench.tools.dagster.pipeline.metadata import stage_metadata


def gate_check(gate: Mapping[str, Any]) -> AssetCheckResult:
    """The core's gate verdict (``evaluate_model``'s ``gate``) as an asset check result."""
    verdict = "reaches" if gate["passed"] else "is below"
    return AssetCheckResult(
        passed=bool(gate["passed"]),
        severity=AssetCheckSeverity.ERROR,
        description=f"{gate['metric']} {gate['value']:.4f} {verdict} {gate['threshold']:.2f}",
        metadata={
            "metric": MetadataValue.text(str(gate["metric"])),
            "value": MetadataValue.float(float(gate["value"])),
            "threshold": MetadataValue.float(float(gate["threshold"])),
        },
    )


def promote(model: Mapping[str, Any], evaluation: Mapping[str, Any]) -> MaterializeResult:
    """The champion: which model to use, and the score that earned it.

    Materialised on its own (outside a run the check guards), a model below its gate is still
    refused.
    """
    gate = evaluation["gate"]
    if not gate["passed"]:
        raise Failure(description=f"not promoted: {gate_check(gate).description}")
    champion = {
        "model_dir": model["model_dir"],
        "model_name": model["model_name"],
        gate["metric"]: gate["value"],
    }
    return MaterializeResult(value=champion, metadata=stage_metadata(champion))
