"""Reading a materialised run back from the Dagster instance (its own API, never its tables).

The run record (status, run config, start and end), the step statistics, and the run's event
log: asset materialisations with their metadata (what each core stage returned, ``seconds``
included) and tags (data versions: lineage), asset check evaluations (the quality gate) and
step failures. Assets are found by convention: ``<use case>_data``, ``_model``, ``_evaluation``
(the three core stages), ``_champion`` and ``_mlflow_run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.support.logs import last_line

# Core stage -> the asset that ran it (``<use case>_<suffix>``).
STAGE_ASSETS = {"prepare_data": "data", "build_model": "model", "evaluate_model": "evaluation"}
CHAMPION = "champion"
TRACKING = "mlflow_run"
GATE_CHECK = "quality_gate"
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"


def asset_name(usecase: str, suffix: str) -> str:
    return f"{usecase}_{suffix}"


@dataclass(frozen=True)
class StepTimes:
    """One step as the run's statistics recorded it (epoch seconds)."""

    key: str
    status: str  # SUCCESS, FAILURE, SKIPPED, IN_PROGRESS
    started: float | None
    finished: float | None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass
class RunBack:
    """What the instance holds about one run."""

    run_id: str
    job_name: str
    status: str  # DagsterRunStatus: SUCCESS, FAILURE, ...
    run_config: dict[str, Any]
    started: float | None
    finished: float | None
    materialised: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset -> metadata
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # asset -> its event's tags
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # check name -> evaluation
    steps: dict[str, StepTimes] = field(default_factory=dict)  # step key -> times
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # step key -> error

    @property
    def successful(self) -> bool:
        return self.status == "SUCCESS"

    def asset(self, usecase: str, suffix: str) -> dict[str, Any]:
        return self.materialised.get(asset_name(usecase, suffix), {})

    def stage_outputs(self, usecase: str) -> dict[str, dict[str, Any]]:
        """What each core stage returned, from its asset's materialisation metadata."""
        return {stage: self.asset(usecase, suffix) for stage, suffix in STAGE_ASSETS.items()}

    def gate(self, usecase: str) -> dict[str, Any] | None:
        return self.checks.get(asset_name(usecase, GATE_CHECK))

    def failed_only_at_the_gate(self, usecase: str) -> bool:
        """The run failed because its blocking quality-gate check failed, and for nothing else."""
        gate = self.gate(usecase)
        return (
            gate is not None
            and not gate["passed"]
            and bool(self.failures)
            and all(error["type"] == CHECK_FAILED_ERROR for error in self.failures.values())
        )

    def failure_message(self) -> str:
        """One line: the run, the step that failed and its exception's last line."""
        if not self.failures:
            return f"dagster run {self.run_id} of {self.job_name} ended {self.status}"
        step, error = next(iter(self.failures.items()))
        return (
            f"dagster run {self.run_id[:8]} of {self.job_name} failed in step {step}: "
            f"{error['type']}: {error['message'] or 'no message'}"
        )


def read_run(instance: Any, run_id: str) -> RunBack:
    """Everything the record and the evidence need, for one run of ``instance``."""
    from dagster import DagsterEventType

    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise MlopsbenchError(f"no Dagster run {run_id} in {instance.root_directory}")
    run = record.dagster_run
    back = RunBack(
        run_id=run.run_id,
        job_name=run.job_name,
        status=run.status.value,
        run_config=dict(run.run_config or {}),
        started=record.start_time,
        finished=record.end_time,
        steps={
            stats.step_key: StepTimes(
                stats.step_key,
                stats.status.value if stats.status else "",
                stats.start_time,
                stats.end_time,
            )
            for stats in instance.get_run_step_stats(run_id)
        },
    )
    wanted = {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_CHECK_EVALUATION,
        DagsterEventType.STEP_FAILURE,
    }
    for entry in instance.all_logs(run_id, of_type=wanted):
        _add_event(back, entry)
    return back


def _add_event(back: RunBack, entry: Any) -> None:
    event = entry.dagster_event
    kind = event.event_type_value
    if kind == "ASSET_MATERIALIZATION":
        materialization = entry.asset_materialization
        name = materialization.asset_key.to_user_string()
        back.materialised[name] = {k: v.value for k, v in materialization.metadata.items()}
        back.tags[name] = dict(materialization.tags or {})
    elif kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.event_specific_data
        back.checks[evaluation.check_name] = {
            "asset": evaluation.asset_key.to_user_string(),
            "passed": bool(evaluation.passed),
            "severity": evaluation.severity.value,
            "description": evaluation.description,
            "metadata": {k: v.value for k, v in evaluation.metadata.items()},
            "step": event.step_key,
        }
    elif kind == "STEP_FAILURE":
        back.failures[event.step_key] = _error(event.event_specific_data)


def _error(failure: Any) -> dict[str, str]:
    """The innermost exception of a step failure: the user's own error, not Dagster's wrapper
    ("Error occurred while executing op ..."); a raised ``Failure`` has its description."""
    error = failure.error
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        description = getattr(failure.user_failure_data, "description", None)
        return {"type": "Failure", "message": " ".join(str(description or "").split())}
    text = error.message.strip()
    prefix = f"{error.cls_name}: "  # messages read "module.Class: text"
    message = text.split(prefix, 1)[1] if prefix in text else text
    return {"type": error.cls_name, "message": last_line(message)}


# ---------------------------------------------------------------------------------------------
# where Dagster's own time goes
# ---------------------------------------------------------------------------------------------


def core_seconds_by_step(back: RunBack, usecase: str) -> dict[str, float]:
    """Seconds of core work inside each step (an asset's step key is its name)."""
    return {
        asset_name(usecase, suffix): float(back.asset(usecase, suffix).get("seconds") or 0.0)
        for suffix in STAGE_ASSETS.values()
        if back.asset(usecase, suffix)
    }


def step_timings(back: RunBack, usecase: str) -> dict[str, dict[str, Any]]:
    """Seconds per step and how much of it was not core work."""
    core = core_seconds_by_step(back, usecase)
    table = {}
    for key, step in back.steps.items():
        seconds, core_s = step.seconds, core.get(key, 0.0)
        table[key] = {
            "status": step.status,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "core_seconds": round(core_s, 3),
            "overhead_s": round(seconds - core_s, 3) if seconds is not None else None,
        }
    return table


def overhead_breakdown(
    back: RunBack, usecase: str, called: float, returned: float
) -> dict[str, float]:
    """``launch_s``: from calling ``execute_in_process`` to the first step (run creation, plan,
    resources); ``in_steps_s``: inside steps but outside the core (IO manager, metadata, event
    log writes); ``between_steps_s``: gaps between steps; ``after_s``: last step to return."""
    done = sorted(
        (s for s in back.steps.values() if s.started is not None and s.finished is not None),
        key=lambda s: s.started or 0.0,
    )
    if not done:
        return {"launch_s": round(returned - called, 3)}
    core = core_seconds_by_step(back, usecase)
    in_steps = sum((s.seconds or 0.0) - core.get(s.key, 0.0) for s in done)
    between = sum(max(0.0, (b.started or 0.0) - (a.finished or 0.0)) for a, b in pairwise(done))
    return {
        "launch_s": round((done[0].started or called) - called, 3),
        "in_steps_s": round(in_steps, 3),
        "between_steps_s": round(between, 3),
        "after_s": round(returned - max(s.finished or 0.0 for s in done), 3),
    }


# ---------------------------------------------------------------------------------------------
# the evidence
# ---------------------------------------------------------------------------------------------


def recorded_evidence(
    back: RunBack, usecase: Any, record: Mapping[str, Any], home: Path
) -> dict[str, bool]:
    """The evidence checklist, each item judged from what the instance stored for the run
    (``record``: the result's ``params`` and ``status``, to compare with)."""
    name = usecase.name
    data, model, evaluation = (back.stage_outputs(name)[stage] for stage in STAGE_ASSETS)
    return {
        "params": _params_recorded(back, usecase, record.get("params") or {}),
        "per_epoch_metrics": bool(model.get("history"))
        and all("epoch" in row for row in model["history"]),
        "final_metrics": isinstance(evaluation.get("accuracy"), float),
        "model_artifact": _stored_model(model, home),
        "plots": len(_inline_plots(evaluation)) >= 2,
        "lineage": _lineage_recorded(back, name, data),
        "run_state": _state_matches(back, name, str(record.get("status"))),
    }


def _params_recorded(back: RunBack, usecase: Any, params: Mapping[str, Any]) -> bool:
    """The run config's settings resource rebuilds the config the record says was run."""
    from mlopsbench.tools.dagster.launch import settings_key

    values = back.run_config.get("resources", {}).get(settings_key(usecase.name), {}).get("config")
    if not values:
        return False
    try:
        return bool(params) and usecase.config(values).to_dict() == dict(params)
    except MlopsbenchError:
        return False


def _inline_plots(evaluation: Mapping[str, Any]) -> list[str]:
    """The evaluation's plots kept in the event log as Markdown images."""
    return [
        key
        for key, value in evaluation.items()
        if key.endswith("_plot") and "](data:image/png;base64," in str(value)
    ]


def _stored_model(model: dict[str, Any], home: Path) -> bool:
    """Model files written by this run into the instance's home (a pre-trained checkpoint kept
    by reference does not count)."""
    folder = model.get("model_dir")
    if not folder or not Path(folder).is_dir() or not any(Path(folder).iterdir()):
        return False
    return Path(folder).resolve().is_relative_to(home.resolve())


def _lineage_recorded(back: RunBack, usecase: str, data: dict[str, Any]) -> bool:
    """The data's digest is its data version, and the evaluation records it as its input."""
    digest = data.get("digest")
    data_asset = asset_name(usecase, "data")
    evaluation_tags = back.tags.get(asset_name(usecase, "evaluation"), {})
    return bool(digest) and (
        back.tags.get(data_asset, {}).get("dagster/data_version") == digest
        and evaluation_tags.get(f"dagster/input_data_version/{data_asset}") == digest
    )


def _state_matches(back: RunBack, usecase: str, status: str) -> bool:
    """The run's status in the instance agrees with the record: a success for ``ok``; for
    ``gate_failed`` a failure at the blocking gate check only."""
    if status == "ok":
        return back.successful
    if status == "gate_failed":
        return back.status == "FAILURE" and back.failed_only_at_the_gate(usecase)
    return back.status == "FAILURE"
