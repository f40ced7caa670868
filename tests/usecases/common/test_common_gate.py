"""The quality gate: >= threshold passes, below raises GateFailedError (exit code 3)."""

from __future__ import annotations

import pytest

from mlopsbench.errors import GateFailedError
from mlopsbench.usecases.common.gate import check_gate, enforce_gate


def test_threshold_is_inclusive() -> None:
    assert check_gate(0.90, 0.90).passed
    assert check_gate(0.95, 0.90).passed
    assert not check_gate(0.8999, 0.90).passed


def test_result_record() -> None:
    gate = check_gate(0.5, 0.8, metric="macro_f1")
    assert gate.to_dict() == {
        "metric": "macro_f1",
        "value": 0.5,
        "threshold": 0.8,
        "passed": False,
    }
    assert gate.message == "quality gate FAILED: macro_f1 0.5000 (threshold 0.8000)"


def test_enforce_gate() -> None:
    assert enforce_gate(0.93, 0.90).passed
    with pytest.raises(GateFailedError) as exc:
        enforce_gate(0.42, 0.90)
    assert exc.value.exit_code == 3
    assert "\n" not in str(exc.value) and "0.4200" in str(exc.value)
