"""The quality gate every tool uses to decide whether a model may be promoted."""

from __future__ import annotations

from dataclasses import dataclass

from mlopsbench.errors import GateFailedError


@dataclass(frozen=True)
class GateResult:
    metric: str
    value: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    @property
    def message(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"quality gate {verdict}: {self.metric} {self.value:.4f} (threshold {self.threshold:.4f})"

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
        }


def check_gate(value: float, threshold: float, metric: str = "accuracy") -> GateResult:
    """Compare a metric with its threshold (>= passes)."""
    return GateResult(metric=metric, value=float(value), threshold=float(threshold))


def enforce_gate(value: float, threshold: float, metric: str = "accuracy") -> GateResult:
    """Like :func:`check_gate` but raise GateFailedError when the model is below the gate."""
    result = check_gate(value, threshold, metric)
    if not result.passed:
        raise GateFailedError(result.message)
    return result
