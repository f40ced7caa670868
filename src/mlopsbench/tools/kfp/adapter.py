"""Run a use case's KFP pipeline locally (``kfp.local`` SubprocessRunner) and read it back.

Each component runs as a fresh ``sys.executable`` process (``use_venv=False``: this virtualenv
already has mlopsbench, torch and kfp; the default would build a venv from the registry).
Everything lands in the run folder: the pipeline root (artifacts + ``executor_output.json`` per
task), the KFP workspace, the components' ``TMPDIR`` (KFP writes ``ephemeral_component.py``
there, torch its inductor cache) and ``kfp.log`` with every component's streamed output.

The result comes from what KFP recorded, read back from each task's ``executor_output.json``:
the metadata of the ``dataset``, ``model`` and ``evaluation`` outputs is what the core stages
returned (their ``seconds`` time the core), plus the metrics, the model folder, the accuracy
output and whether ``promote-model`` ran; each task's duration comes from ``kfp.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder, core_timings, status_from_gate
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.kfp.build import KfpSettings, build_pipeline, pipeline_arguments
from mlopsbench.usecases.common.modelfiles import folder_holds_model

LOG_FILE = "kfp.log"
EXECUTOR_OUTPUT = "executor_output.json"
# The output artifact whose metadata is what each core stage returned (the same in every
# pipeline), and the output that proves promote-model ran.
STAGE_OUTPUTS = {"prepare_data": "dataset", "build_model": "model", "evaluate_model": "evaluation"}
PROMOTION_OUTPUT = "promotion"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Task '([^']+)' finished with status FAILURE")
_EXCEPTION_LINE = re.compile(r"^\s*((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)): (.+)$")
_TASK_EVENT = re.compile(
    r"^(\d\d):(\d\d):(\d\d(?:\.\d+)?) - \w+ - (?:Executing task '([^']+)'|Task '([^']+)' finished)"
)


@dataclass(frozen=True)
class LocalRun:
    """What one ``kfp.local`` pipeline run left behind, as the adapter saw it."""

    pipeline: str
    root: Path
    run_dir: Path | None
    seconds: float
    failure: str | None
    log_path: Path


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder("kfp", request, distributions=get_tool("kfp").distributions)
    out = Path(request.out_dir).resolve()
    settings = KfpSettings(image=request.options.get("image") or KfpSettings.from_env().image)
    # Inputs first: a bad path or an unreachable tracking server leaves nothing in the run folder.
    recorder.usecase.check_inputs(request.config)
    _check_tracking(request.tracking_uri)
    root = _writable_dir(Path(request.options.get("pipeline_root") or out / "pipeline_root"))
    arguments = {
        **pipeline_arguments(request.config),
        "mlflow_uri": request.tracking_uri or "",
        "run_name": f"kfp-{recorder.usecase.name}-{out.name}",
    }
    with recorder.stage("setup"):
        pipeline = build_pipeline(recorder.usecase.name, settings)
    local = _run_locally(pipeline, arguments, root, out)
    return _record(recorder, local, settings)


# ---- running -----------------------------------------------------------------------------


def _check_tracking(uri: str | None) -> None:
    """An unreachable MLflow server fails now, not in promote-model after training."""
    if uri:
        from mlopsbench.tracking import check_tracking_uri

        check_tracking_uri(uri)


def _writable_dir(path: Path) -> Path:
    """Create the pipeline root and prove it is writable, with a one-line error if not."""
    path = path.expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"KFP pipeline root {path} is not writable: {exc.strerror or exc}"
        ) from None
    return path


def _run_locally(
    pipeline: Any, arguments: dict[str, Any], root: Path, out: Path, cache: bool = False
) -> LocalRun:
    """Run the pipeline with kfp.local; ``cache``: KFP's local task cache (under the
    pipeline root), so a rerun skips the tasks that already succeeded with the same inputs."""
    import kfp.local

    failure: str | None = None
    log_path = out / LOG_FILE
    started = time.perf_counter()
    with _local_session(out, log_path):
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            workspace_root=str(out / "kfp_workspace"),
            enable_caching=cache,
        )
        try:
            pipeline(**arguments)
        except RuntimeError as exc:
            failure = _failure_line(str(exc), log_path)
    return LocalRun(
        pipeline=pipeline.name,
        root=root,
        run_dir=_run_dir(root, pipeline.name),
        seconds=time.perf_counter() - started,
        failure=failure,
        log_path=log_path,
    )


@contextlib.contextmanager
def _local_session(out: Path, log_path: Path) -> Iterator[None]:
    """Components inherit our environment: point their TMPDIR into the run folder, and send
    KFP's chatter (its logger and the components' streamed output) to ``kfp.log``."""
    tmp = out / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        with (
            log_path.open("w", encoding="utf-8") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
            warnings.catch_warnings(),
        ):
            # Our image is not named "python*": locally the venv stands in for it, on purpose.
            warnings.filterwarnings(
                "ignore", message="You may be attemping", category=RuntimeWarning
            )
            yield
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved


def _failure_line(message: str, log_path: Path) -> str:
    """One line: which task(s) failed and why (the component's exception), from KFP's log.

    KFP's own message chains every failed task with "inside" (two parallel sentiment steps
    failing read "'a' inside 'b'"), so the task names come from its per-task status lines.
    """
    log = _read_log(log_path)
    failed = list(dict.fromkeys(_FAILED_TASK.findall(log)))
    if failed:
        where = ("task " if len(failed) == 1 else "tasks ") + ", ".join(f"'{t}'" for t in failed)
    else:
        match = re.search(r"Inner task failed: (.+?)\.?$", _ANSI.sub("", message))
        where = f"task {match.group(1)}" if match else "a task"
    cause = ""
    for line in log.splitlines():
        found = _EXCEPTION_LINE.match(line)
        if found:  # the last one: the exception the component died of
            cause = f": {found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"
    return f"KFP pipeline FAILURE in {where}{cause} (log: {log_path})"


def _read_log(log_path: Path) -> str:
    return _ANSI.sub("", log_path.read_text(errors="replace")) if log_path.is_file() else ""


def _run_dir(root: Path, pipeline_name: str) -> Path | None:
    runs = sorted(root.glob(f"{pipeline_name}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


# ---- reading the run back ----------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """The outputs KFP recorded for a run: each task's ``executor_output.json``."""

    tasks: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, run_dir: Path | None) -> Outputs:
        """Task -> its executor output (only tasks that completed wrote one). A task inside a
        loop iteration is named by its folder under the run (``for-loop-1-iteration-0/t``)."""
        tasks: dict[str, dict[str, Any]] = {}
        for path in sorted(run_dir.rglob(EXECUTOR_OUTPUT)) if run_dir else []:
            with contextlib.suppress(OSError, json.JSONDecodeError):
                tasks[path.parent.relative_to(run_dir).as_posix()] = json.loads(path.read_text())
        return cls(tasks)

    def task_of(self, output: str) -> str | None:
        """The task that produced the output artifact named ``output``."""
        found = (task for task, out in self.tasks.items() if output in out.get("artifacts", {}))
        return next(found, None)

    def artifact(self, output: str) -> dict[str, Any]:
        """The output artifact (uri + metadata), {} when its task did not complete."""
        task = self.task_of(output)
        if task is None:
            return {}
        try:
            return dict(self.tasks[task]["artifacts"][output]["artifacts"][0])
        except (KeyError, IndexError, TypeError):
            return {}

    def metadata(self, output: str) -> dict[str, Any]:
        return dict(self.artifact(output).get("metadata") or {})

    def path(self, output: str, key: str | None = None) -> Path | None:
        """The artifact's folder, or the file its metadata records (relative) under ``key``."""
        artifact = self.artifact(output)
        if not artifact:
            return None
        relative = artifact.get("metadata", {}).get(key) if key else ""
        return Path(artifact["uri"]) / relative if relative is not None else None

    def parameter(self, output: str, name: str = "Output") -> Any:
        """An output parameter of the task that produced the artifact ``output``."""
        task = self.task_of(output)
        return self.tasks.get(task or "", {}).get("parameterValues", {}).get(name)


def _record(recorder: RunRecorder, local: LocalRun, settings: KfpSettings) -> RunResult:
    outputs = Outputs.read(local.run_dir)
    returned = {stage: outputs.metadata(output) for stage, output in STAGE_OUTPUTS.items()}
    tool_info = _tool_info(recorder, local, outputs, settings)
    timings = _timings(recorder, returned, tool_info["components"], local.seconds)
    metrics = _scalars(outputs.metadata("metrics"))
    artifacts = _artifacts(outputs)
    history = _history(outputs.path("model", "history_path"))
    if local.failure:
        return recorder.failed(
            local.failure,
            metrics=metrics,
            artifacts=artifacts,
            tool_info=tool_info,
            history=history,
            timings=timings,
        )
    gate = returned["evaluate_model"].get("gate")  # the core's own verdict
    return recorder.finish(
        metrics=metrics,
        gate=gate,
        artifacts=artifacts,
        tool_info=tool_info,
        history=history,
        timings=timings,
        model=returned["build_model"].get("model_name"),
        status=_status(gate, promoted=tool_info["promoted"]),
    )


def _timings(
    recorder: RunRecorder,
    returned: Mapping[str, Mapping[str, Any]],
    components: Mapping[str, Mapping[str, Any]],
    pipeline_s: float,
) -> dict[str, float]:
    """The core's own seconds per stage, promote-model's task time (the MLflow logging, when
    asked for, is not KFP's overhead) and the rest of the pipeline's time: KFP's overhead."""
    timings = core_timings(recorder.usecase, returned)
    promote = [c.get("task_s") for c in components.values() if c.get("stage") == "promote"]
    if promote and isinstance(promote[0], float):
        timings["promote"] = promote[0]
    timings["kfp_overhead"] = max(pipeline_s - sum(timings.values()), 0.0)
    return timings


def _status(gate: Mapping[str, Any] | None, promoted: bool) -> tuple[str, str | None]:
    state, error = status_from_gate(gate)
    if state == "gate_failed":
        return state, f"{error}; promote-model skipped"
    if state == "ok" and not promoted:
        return "failed", "quality gate passed but promote-model did not run"
    return state, error


def _artifacts(outputs: Outputs) -> dict[str, str]:
    """Name -> file of everything the run produced, as KFP's outputs locate it."""
    found = {
        "model": outputs.path("model", "model_dir"),
        "history": outputs.path("model", "history_path"),
        "data": outputs.path("dataset", "data_path"),
        "report": outputs.path("report"),
        "promotion": outputs.path(PROMOTION_OUTPUT, "record"),
    }
    found.update(_evaluation_files(outputs))
    return {name: str(path) for name, path in found.items() if path is not None}


def _evaluation_files(outputs: Outputs) -> dict[str, Path]:
    """The files evaluate wrote (metrics, plots...), by the names the core gave them."""
    folder = outputs.path("evaluation")
    files = outputs.metadata("evaluation").get("artifacts", {})
    return {name: folder / relative for name, relative in files.items()} if folder else {}


def _history(path: Path | None) -> list[dict[str, float]]:
    if path is None or not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return rows if isinstance(rows, list) else []


def _tool_info(
    recorder: RunRecorder, local: LocalRun, outputs: Outputs, settings: KfpSettings
) -> dict[str, Any]:
    components = _components(recorder, local, outputs)
    tasks_s = sum(c.get("task_s", 0.0) for c in components.values())
    dataset = outputs.metadata("dataset")
    return {
        "pipeline": local.pipeline,
        "pipeline_root": str(local.root),
        "pipeline_run_dir": str(local.run_dir) if local.run_dir else None,
        "task_dirs": {t: str(local.run_dir / t) for t in outputs.tasks} if local.run_dir else {},
        "promoted": outputs.task_of(PROMOTION_OUTPUT) is not None,
        "image": settings.image,
        "components": components,
        "pipeline_s": local.seconds,
        # Pipeline time outside the tasks as KFP logged them: its own dispatch and bookkeeping.
        "outside_tasks_s": max(local.seconds - tasks_s, 0.0),
        "log": str(local.log_path),
        "dataset": {k: v for k, v in dataset.items() if k not in ("data_path", "seconds")},
        "mlflow": outputs.metadata(PROMOTION_OUTPUT).get("mlflow") or None,
    }


def _components(
    recorder: RunRecorder, local: LocalRun, outputs: Outputs
) -> dict[str, dict[str, Any]]:
    """Per task: the stage it ran, the core's own seconds, and the task's time in KFP's log
    (process start, KFP's executor, imports, the core call, writing the outputs)."""
    components: dict[str, dict[str, Any]] = {}
    for stage, output in STAGE_OUTPUTS.items():
        task = outputs.task_of(output)
        if task is not None:
            seconds = outputs.metadata(output).get("seconds")
            components[task] = {"stage": recorder.usecase.stage_keys[stage], "core_s": seconds}
    promote = outputs.task_of(PROMOTION_OUTPUT)
    if promote is not None:
        components[promote] = {"stage": "promote"}
    for task, seconds in _task_seconds(_read_log(local.log_path)).items():
        components.setdefault(task, {})["task_s"] = seconds
    return components


def _task_seconds(log: str) -> dict[str, float]:
    """Task -> seconds from "Executing task" to "finished", by the log's clock times."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for line in log.splitlines():
        event = _TASK_EVENT.match(line)
        if not event:
            continue
        hours, minutes, secs, starting, finished = event.groups()
        clock = int(hours) * 3600 + int(minutes) * 60 + float(secs)
        if starting:
            started[starting] = clock
        elif finished in started:
            seconds[finished] = round((clock - started[finished]) % 86400, 3)  # past midnight
    return seconds


def _scalars(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


# ---- evidence ----------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """What KFP itself recorded, re-read from the pipeline root (not from the result record)."""
    run_dir = result.tool_info.get("pipeline_run_dir")
    outputs = Outputs.read(Path(run_dir) if run_dir else None)
    model_dir = outputs.path("model", "model_dir")
    pngs = [path for path in _evaluation_files(outputs).values() if path.suffix == ".png"]
    report = outputs.path("report")
    dataset = outputs.metadata("dataset")
    return {
        "params": bool(outputs.metadata("model").get("params")),
        "per_epoch_metrics": any(k.startswith("epoch") for k in outputs.metadata("history")),
        "final_metrics": "accuracy" in outputs.metadata("metrics"),
        "model_artifact": folder_holds_model(model_dir),
        "plots": bool(outputs.metadata("confusion").get("confusionMatrix"))
        and bool(pngs)
        and all(png.is_file() for png in pngs)
        and report is not None
        and report.is_file(),
        "lineage": bool(dataset.get("source")) and bool(dataset.get("digest")),
        "run_state": all(outputs.task_of(output) for output in STAGE_OUTPUTS.values()),
    }
