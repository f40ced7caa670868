"""The one record builder every tool adapter uses: timer, start time, peak RSS, environment,
gate -> status, and the failure record.

::

    recorder = RunRecorder("metaflow", request)
    with recorder.stage("metaflow_run"):
        ...launch the tool...
    return recorder.finish(metrics=..., gate=..., artifacts=..., tool_info=...)
    # or, when the tool's run failed:
    return recorder.failed("metaflow run DigitsFlow/12 failed in step train: ...", tool_info=...)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlopsbench.result import (
    RunRequest,
    RunResult,
    StageTimer,
    environment_info,
    now_iso,
    peak_rss_mb,
)
from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.registry import get_usecase


def status_from_gate(gate: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """``ok`` when the gate passed, ``gate_failed`` (with its message) when not.

    A run without a gate verdict never reached evaluation: that is a failure.
    """
    if not gate:
        return "failed", "the run ended before the quality gate"
    if gate.get("passed"):
        return "ok", None
    value, threshold = gate.get("value"), gate.get("threshold")
    detail = (
        f": {gate.get('metric', 'accuracy')} {value:.4f} < {threshold:.4f}"
        if isinstance(value, int | float) and isinstance(threshold, int | float)
        else ""
    )
    return "gate_failed", f"quality gate failed{detail}"


def core_timings(
    usecase: UseCase, outputs: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, float]:
    """Seconds of each core stage from what the stages returned (``{"prepare_data": {...}}``).

    Every core stage reports its own ``seconds``; a tool that ran the stage in a step process
    hands the returned dict back (artifact, XCom, output metadata), so no pipeline times itself.
    """
    timings: dict[str, float] = {}
    for stage, key in usecase.stage_keys.items():
        seconds = (outputs.get(stage) or {}).get("seconds")
        if isinstance(seconds, int | float):
            timings[key] = float(seconds)
    return timings


def unstarted_failure(tool: str, usecase: str, params: Mapping[str, Any], error: str) -> RunResult:
    """The record of a run that failed before its tool started (bad config, missing tool):
    no config object exists, so the flat parameters as given are what it records."""
    return RunResult(
        tool=tool,
        usecase=usecase,
        model=str(params.get("model") or params.get("model_name") or "?"),
        params=dict(params),
        status="failed",
        error=" ".join(str(error).split()) or "failed",
        started_at=now_iso(),
        environment=environment_info(),
    )


class RunRecorder:
    """Times one tool run and turns what it produced into the common RunResult."""

    def __init__(self, tool: str, request: RunRequest, distributions: Sequence[str] = ()) -> None:
        self.tool = tool
        self.request = request
        self.usecase = get_usecase(request.usecase)
        self.distributions = tuple(distributions)
        self.timer = StageTimer()
        self.started_at = now_iso()

    @property
    def cfg(self) -> Any:
        return self.request.config

    @property
    def out_dir(self) -> Path:
        return Path(self.request.out_dir)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with self.timer.stage(name):
            yield

    def add(self, name: str, seconds: float) -> None:
        self.timer.add(name, seconds)

    def finish(
        self,
        *,
        metrics: Mapping[str, float],
        gate: Mapping[str, Any] | None,
        artifacts: Mapping[str, str] | None = None,
        tool_info: Mapping[str, Any] | None = None,
        history: Sequence[Mapping[str, float]] = (),
        timings: Mapping[str, float] | None = None,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        status: tuple[str, str | None] | None = None,
    ) -> RunResult:
        """The record of a run that reached its end (status from the gate unless given)."""
        state, error = status or status_from_gate(gate)
        return self._record(
            status=state,
            error=error,
            metrics=dict(metrics),
            gate=dict(gate) if gate else None,
            artifacts=dict(artifacts or {}),
            tool_info=dict(tool_info or {}),
            history=[dict(row) for row in history],
            timings=timings,
            model=model,
            params=params,
        )

    def failed(
        self,
        error: str,
        *,
        tool_info: Mapping[str, Any] | None = None,
        artifacts: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        timings: Mapping[str, float] | None = None,
        history: Sequence[Mapping[str, float]] = (),
    ) -> RunResult:
        """The record of a run the tool reported as failed (the error is one line)."""
        return self._record(
            status="failed",
            error=" ".join(str(error).split()) or "failed",
            metrics=dict(metrics or {}),
            gate=None,
            artifacts=dict(artifacts or {}),
            tool_info=dict(tool_info or {}),
            history=[dict(row) for row in history],
            timings=timings,
            model=None,
            params=None,
        )

    def _record(
        self,
        *,
        status: str,
        error: str | None,
        metrics: dict[str, float],
        gate: dict[str, Any] | None,
        artifacts: dict[str, str],
        tool_info: dict[str, Any],
        history: list[dict[str, float]],
        timings: Mapping[str, float] | None,
        model: str | None,
        params: Mapping[str, Any] | None,
    ) -> RunResult:
        return RunResult(
            tool=self.tool,
            usecase=self.usecase.name,
            model=model or self.usecase.model_label(self.cfg),
            params=dict(params) if params is not None else self.cfg.to_dict(),
            metrics=metrics,
            artifacts=artifacts,
            timings={**(timings or {}), **self.timer.timings},
            wall_time_s=self.timer.elapsed,
            peak_rss_mb=peak_rss_mb(),
            status=status,
            error=error,
            gate=gate,
            tool_info=tool_info,
            history=history,
            started_at=self.started_at,
            environment=environment_info(self.distributions),
        )


def non_empty_dir(path: Any) -> bool:
    """Whether ``path`` names a folder with something in it (a model folder a run wrote)."""
    return bool(path) and Path(path).is_dir() and any(Path(path).iterdir())
