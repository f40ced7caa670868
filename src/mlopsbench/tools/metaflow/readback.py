"""Reading a finished (or failed) flow run back through Metaflow's Client API.

Everything the result record and the evidence need comes from Metaflow's own store: the steps
in graph order with their task timestamps, which step ran each core stage (and whether it was
cloned by ``resume``), what each stage returned (artifacts ``dataset``, ``model_info``,
``evaluation``: their ``seconds`` time the core), the failing step's exception, the git
metadata, and the evaluation card's HTML.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.usecases.common.usecase import UseCase

CLIENT_CACHE_DIR = ".metaflow_client"
CARD_ID = "evaluation"

# Core stage -> the artifact its step stores (the dict the stage returned), in both flows; and
# the MLflow logging of the end step, which reports its own seconds the same way.
STAGE_ARTIFACTS = {
    "prepare_data": "dataset",
    "build_model": "model_info",
    "evaluate_model": "evaluation",
    "log_to_mlflow": "mlflow",
}


@dataclass(frozen=True)
class StepTask:
    """One step's task as Metaflow recorded it (epoch seconds)."""

    name: str
    pathspec: str
    started: float
    finished: float | None
    successful: bool
    cloned_from: str | None  # resume: the task of the origin run this one copies

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass
class RunBack:
    """What the Client API says about one run."""

    run_id: str
    pathspec: str
    successful: bool
    origin: str | None  # the run this one resumed
    steps: dict[str, StepTask]  # graph order
    stage_steps: dict[str, str]  # core stage -> the step that stored its output
    outputs: dict[str, dict[str, Any]]  # core stage -> what it returned
    failure: tuple[str, Any] | None = None  # (step, Metaflow's exception record)
    params: dict[str, Any] = field(default_factory=dict)
    mlflow: dict[str, Any] = field(default_factory=dict)
    git: dict[str, str] = field(default_factory=dict)

    def ran_here(self, stage: str) -> bool:
        """The stage ran in this run (not cloned from the origin of a resume)."""
        step = self.steps.get(self.stage_steps.get(stage, ""))
        return step is not None and step.cloned_from is None

    @property
    def fresh_outputs(self) -> dict[str, dict[str, Any]]:
        """Outputs of the stages that ran in this run: their seconds are this run's."""
        return {stage: out for stage, out in self.outputs.items() if self.ran_here(stage)}

    def core_seconds_by_step(self) -> dict[str, float]:
        """Seconds of core work inside each step task (0 for steps with no stage, or cloned)."""
        return {
            self.stage_steps[stage]: float(out.get("seconds") or 0.0)
            for stage, out in self.fresh_outputs.items()
        }

    @property
    def card_task(self) -> StepTask | None:
        """The task that drew the evaluation card (the step that ran ``evaluate_model``)."""
        step = self.steps.get(self.stage_steps.get("evaluate_model", ""))
        return step if step is not None and step.successful else None


def read_run(mf_run: Any) -> RunBack:
    """Everything the result record needs, from the Client API."""
    tasks = {name: mf_run[name].task for name in step_order(mf_run)}
    stage_steps, outputs = _stage_outputs(tasks)
    # The last step that succeeded holds the most complete set of artifacts.
    latest = next((task for task in reversed(tasks.values()) if task.successful), None)
    return RunBack(
        run_id=str(mf_run.id),
        pathspec=str(mf_run.pathspec),
        successful=bool(mf_run.successful),
        origin=_origin(mf_run),
        steps={name: _step_task(name, task) for name, task in tasks.items()},
        stage_steps=stage_steps,
        outputs=outputs,
        failure=first_failure(mf_run, tasks),
        params=_data(latest, "params") or {},
        mlflow=_data(latest, "mlflow") or {},
        git=git_info(next(iter(tasks.values()), None)),
    )


def first_failure(mf_run: Any, tasks: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The first step (graph order) with a failed task that recorded its exception.

    Every task of a step counts: one task of a ``foreach`` failing fails the run, and
    ``Step.task`` names just one of them.
    """
    for name in tasks:
        for task in mf_run[name]:
            if not task.successful and task.exception is not None:
                return name, task.exception
    return None


def step_order(mf_run: Any) -> list[str]:
    """The run's steps in graph order (start -> end), as far as the run got.

    The Client lists steps by creation time, which after ``resume`` is not the graph's order;
    the flow's graph is stored with every task (``_graph_info``).
    """
    present = [step.id for step in mf_run]
    for name in present:
        task = mf_run[name].task
        if "_graph_info" in task:
            graph = _flatten(task["_graph_info"].data.get("graph_structure", []))
            return [name for name in graph if name in present]
    return sorted(present, key=lambda name: mf_run[name].task.created_at)


def _flatten(structure: list[Any]) -> list[str]:
    """``graph_structure`` nests the branches of a split in lists; linear flows are flat."""
    names: list[str] = []
    for item in structure:
        names.extend(_flatten(item) if isinstance(item, list) else [str(item)])
    return names


def _step_task(name: str, task: Any) -> StepTask:
    return StepTask(
        name=name,
        pathspec=str(task.pathspec),
        started=task.created_at.timestamp(),  # epoch seconds (ms resolution)
        finished=task.finished_at.timestamp() if task.finished_at else None,
        successful=bool(task.successful),
        cloned_from=task.origin_pathspec or None,
    )


@dataclass(frozen=True)
class ForeachTask:
    """One task of a ``foreach`` step: its split, timestamps, attempts and what it stored."""

    pathspec: str
    index: int | None  # the task's place in the foreach list
    started: float
    finished: float | None
    successful: bool
    attempt: int  # 0: the first try; n: the n-th retry (@retry)
    output: dict[str, Any] | None  # the artifact asked for, None if the task did not store it

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


def foreach_tasks(mf_run: Any, step: str, artifact: str) -> list[ForeachTask]:
    """Every task of ``step`` in foreach order, with the artifact each stored."""
    if step not in {s.id for s in mf_run}:  # the run failed before the fan-out
        return []
    found = [
        ForeachTask(
            pathspec=str(task.pathspec),
            index=task.index,
            started=task.created_at.timestamp(),
            finished=task.finished_at.timestamp() if task.finished_at else None,
            successful=bool(task.successful),
            attempt=int(task.current_attempt),
            output=dict(task[artifact].data) if artifact in task else None,
        )
        for task in mf_run[step]
    ]
    return sorted(found, key=lambda t: (t.index is None, t.index or 0, t.started))


def most_at_once(tasks: list[ForeachTask]) -> int:
    """The most tasks whose [started, finished] windows overlapped at one moment."""
    events = sorted(
        [(t.started, 1) for t in tasks if t.finished is not None]
        + [(t.finished, -1) for t in tasks if t.finished is not None]
    )  # at a tie an end (-1) sorts first: touching windows do not overlap
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def _stage_outputs(tasks: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Which step stored each stage's output, and the output itself.

    Artifacts flow on to later steps, so a stage's step is the first one (in graph order)
    whose successful task holds its artifact.
    """
    stage_steps: dict[str, str] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for stage, artifact in STAGE_ARTIFACTS.items():
        for name, task in tasks.items():
            if task.successful and artifact in task:
                stage_steps[stage], outputs[stage] = name, dict(task[artifact].data)
                break
    return stage_steps, outputs


def _origin(mf_run: Any) -> str | None:
    """The run this one resumed, if any (Metaflow writes the literal 'None' otherwise)."""
    origin = mf_run.origin_pathspec
    return None if not origin or origin.endswith("/None") else str(origin)


def _data(task: Any, name: str) -> Any:
    return task[name].data if task is not None and name in task else None


def git_info(task: Any) -> dict[str, str]:
    """Metaflow records the flow file's git branch and commit in each task's metadata."""
    try:
        return dict(json.loads(task.metadata_dict.get("git-info", "{}")))
    except (AttributeError, ValueError):  # no task, or no git metadata
        return {}


def overhead_breakdown(back: RunBack, launched: float, returned: float) -> dict[str, float]:
    """Where Metaflow's own time goes, from task timestamps (epoch seconds).

    ``launch_s``: from calling the Runner to the first task (CLI start, graph validation);
    ``in_steps_s``: inside step tasks but outside the core (process start, imports of Metaflow,
    artifact (de)serialisation, card rendering); ``between_steps_s``: gaps between one task
    finishing and the next starting (process exit, scheduler polling); ``after_s``: from the
    last task to the Runner returning.
    """
    done = sorted(
        (s for s in back.steps.values() if s.finished is not None), key=lambda s: s.started
    )
    if not done:
        return {"launch_s": round(returned - launched, 3)}
    core = back.core_seconds_by_step()
    in_steps = sum((s.seconds or 0.0) - core.get(s.name, 0.0) for s in done)
    between = sum(max(0.0, b.started - (a.finished or b.started)) for a, b in pairwise(done))
    return {
        "launch_s": round(done[0].started - launched, 3),
        "in_steps_s": round(in_steps, 3),
        "between_steps_s": round(between, 3),
        "after_s": round(returned - (done[-1].finished or returned), 3),
    }


def step_timings(back: RunBack) -> dict[str, dict[str, Any]]:
    """Seconds per step task (process start to finish) and how much of it was not core work."""
    core = back.core_seconds_by_step()
    table = {}
    for name, step in back.steps.items():
        seconds, core_s = step.seconds, core.get(name, 0.0)
        table[name] = {
            "seconds": round(seconds, 3) if seconds is not None else None,
            "core_seconds": round(core_s, 3),
            "overhead_s": round(seconds - core_s, 3) if seconds is not None else None,
            "cloned": step.cloned_from is not None,
        }
    return table


# ---------------------------------------------------------------------------------------------
# the Client's global state, and the evidence
# ---------------------------------------------------------------------------------------------


@contextmanager
def client_scope(run_dir: Path) -> Iterator[None]:
    """Read this run's store without the user's namespace and with a client cache under run_dir.

    The Client keeps both as module globals (set from the environment at import time), so they
    are swapped for the duration and restored afterwards: the harness process stays unchanged.
    """
    import metaflow.client.core as core
    from metaflow.client.filecache import FileCache
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.metadata_providers.local import LocalMetadataProvider

    # Opening a Run with local metadata sets these class attributes (the metadata folder and the
    # datastore root) as a side effect; the raw values are restored, not re-computed.
    saved = (
        core.current_namespace,
        core.filecache,
        LocalMetadataProvider._INFO,  # type: ignore[attr-defined]
        LocalStorage.datastore_root,
    )
    core.current_namespace = None  # type: ignore[assignment]  # read by pathspec: no user
    core.filecache = FileCache(cache_dir=str(run_dir / CLIENT_CACHE_DIR))
    try:
        yield
    finally:
        (
            core.current_namespace,
            core.filecache,
            LocalMetadataProvider._INFO,  # type: ignore[attr-defined]
            LocalStorage.datastore_root,
        ) = saved


def open_run(pathspec: str, run_dir: Path) -> Any:
    """A run of the local datastore in ``run_dir`` (call inside :func:`client_scope`)."""
    from metaflow import Run

    return Run(pathspec, _namespace_check=False, _current_metadata=f"local@{run_dir}")


def recorded_evidence(mf_run: Any, usecase: UseCase) -> dict[str, bool]:
    """The evidence checklist, each item judged from what Metaflow stored for the run."""
    back = read_run(mf_run)
    return {
        "params": _params_recorded(mf_run, back, usecase),
        "per_epoch_metrics": bool(back.outputs.get("build_model", {}).get("history")),
        "final_metrics": "accuracy" in back.outputs.get("evaluate_model", {}).get("metrics", {}),
        # Model bytes in the datastore (a pre-trained checkpoint kept by reference does not count).
        "model_artifact": bool(_stage_step_data(mf_run, back, "build_model", "model_files")),
        "plots": _card_has_images(mf_run, back),
        "lineage": _lineage_recorded(back),
        "run_state": bool(mf_run.finished and mf_run.successful),
    }


def recorded_sweep_evidence(mf_run: Any, usecase: UseCase) -> dict[str, bool]:
    """The checklist for a sweep run: the best trial's history and model files as the fan-in
    step stored them (``best``, ``best_model_files``), the rest as for a run."""
    back = read_run(mf_run)
    best = _last_data(mf_run, back, "best") or {}
    return {
        "params": _params_recorded(mf_run, back, usecase),
        "per_epoch_metrics": bool(best.get("history")),
        "final_metrics": "accuracy" in back.outputs.get("evaluate_model", {}).get("metrics", {}),
        "model_artifact": bool(_last_data(mf_run, back, "best_model_files")),
        "plots": _card_has_images(mf_run, back),
        "lineage": _lineage_recorded(back),
        "run_state": bool(mf_run.finished and mf_run.successful),
    }


def _last_data(mf_run: Any, back: RunBack, name: str) -> Any:
    """Artifact ``name`` from the last successful step (graph order) that holds it."""
    for step in reversed(back.steps.values()):
        if step.successful and name in (task := mf_run[step.name].task):
            return task[name].data
    return None


def _stage_step_data(mf_run: Any, back: RunBack, stage: str, name: str) -> Any:
    """Artifact ``name`` of the step that ran ``stage`` (None when that step did not run)."""
    step = back.stage_steps.get(stage)
    return _data(mf_run[step].task, name) if step else None


def _params_recorded(mf_run: Any, back: RunBack, usecase: UseCase) -> bool:
    """The ``params`` artifact is the config the run's own Parameter values define."""
    if not back.params or not back.steps:
        return False
    first = mf_run[next(iter(back.steps))].task  # every task stores the Parameters
    values = {spec.name: first[spec.name].data for spec in usecase.params() if spec.name in first}
    try:
        return bool(usecase.config(values).to_dict() == back.params)
    except MlopsbenchError:  # values the config rejects: the record does not match them
        return False


def _lineage_recorded(back: RunBack) -> bool:
    dataset = back.outputs.get("prepare_data", {})
    return bool(dataset.get("source") and dataset.get("digest")) or bool(back.git)


def _card_has_images(mf_run: Any, back: RunBack) -> bool:
    from metaflow.cards import get_cards

    if back.card_task is None:
        return False
    try:
        cards = get_cards(mf_run[back.card_task.name].task, id=CARD_ID)
        return any(len(card_images(card.get())) >= 2 for card in cards)
    except Exception:  # no card stored: the evidence is simply missing
        return False


def card_components(html: str) -> list[dict[str, Any]]:
    """The components of a Metaflow card (its HTML embeds them as base64-encoded JSON)."""
    import base64
    import re

    found: list[dict[str, Any]] = []
    for blob in re.findall(r'__MF_DATA__\["[^"]+"\]\s*=\s*"([A-Za-z0-9+/=]+)"', html):
        try:
            payload = json.loads(base64.b64decode(blob))
        except ValueError:
            continue
        stack = [payload]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "type" in node:
                    found.append(node)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return found


def card_images(html: str) -> list[str]:
    """Labels of the PNG images embedded in a card's HTML."""
    return [
        str(c.get("label") or "")
        for c in card_components(html)
        if c.get("type") == "image" and str(c.get("src", "")).startswith("data:image/png;base64")
    ]
