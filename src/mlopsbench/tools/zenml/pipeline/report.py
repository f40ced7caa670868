"""The evaluation as a self-contained HTML page: ZenML shows an ``HTMLString`` artifact in the
dashboard (the artifact's visualization), so the plots travel with the run."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zenml.types import HTMLString

HEADLINE_METRICS = ("accuracy", "macro_f1", "loss")


def evaluation_report(title: str, evaluation: Mapping[str, Any]) -> HTMLString:
    """Headline metrics, the quality gate and every PNG plot ``evaluate_model`` wrote."""
    metrics, gate = evaluation["metrics"], evaluation["gate"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{float(metrics[name]):.4f}</td></tr>"
        for name in HEADLINE_METRICS
        if name in metrics
    )
    verdict = "passed" if gate["passed"] else "FAILED"
    plots = {k: Path(v) for k, v in evaluation["artifacts"].items() if str(v).endswith(".png")}
    figures = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{_base64(path)}'/>"
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, path in plots.items()
        if path.is_file()
    )
    return HTMLString(
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>"
        f"<p>Quality gate {verdict}: {html.escape(str(gate['metric']))} {gate['value']:.4f} "
        f"(threshold {gate['threshold']:.2f})</p>{figures}"
    )


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")
