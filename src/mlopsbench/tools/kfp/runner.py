"""Run a KFP pipeline locally (``kfp.local`` SubprocessRunner) and read it back into a RunResult.

Each component runs as a fresh ``sys.executable`` process (``use_venv=False``: this virtualenv
already has mlopsbench, torch and kfp, and the default would build a venv from the registry).
Everything lands in the run folder: the pipeline root (artifacts + ``executor_output.json`` per
task), the KFP workspace, the components' ``TMPDIR`` (KFP writes ``ephemeral_component.py``
there, torch its inductor cache) and ``kfp.log`` with every component's streamed output.

What the result reports comes from what KFP recorded, read back from ``executor_output.json``:
metrics, the model folder, the accuracy output, whether ``promote-model`` ran, and the timing
stamps each component wrote into its artifact metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.result import (
    RunRequest,
    RunResult,
    StageTimer,
    environment_info,
    now_iso,
    peak_rss_mb,
)
from mlopsbench.tools.kfp.inside import PROMOTION_FILE, TIMING_KEY
from mlopsbench.tools.kfp.params import KfpSettings, check_usecase, pipeline_arguments
from mlopsbench.tools.kfp.pipelines import PIPELINE_NAMES, build_pipeline
from mlopsbench.usecases.common.gate import check_gate

LOG_FILE = "kfp.log"
EXECUTOR_OUTPUT = "executor_output.json"
PROMOTE_TASK = "promote-model"
# (task, output artifact) that carries each piece of the result, per use case.
TASKS = {
    "digits": {
        "data": "prepare-digits-data",
        "model": "train-digits",
        "evaluate": "evaluate-digits",
    },
    "sentiment": {
        "data": "prepare-sentiment-data",
        "model": "prepare-sentiment-model",
        "evaluate": "evaluate-sentiment",
    },
}
_STAGE_ORDER = ("data", "train", "model", "evaluate", "promote")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Task '([^']+)' finished with status FAILURE")
_EXCEPTION_LINE = re.compile(r"^\s*((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)): (.+)$")


@dataclass(frozen=True)
class _LocalRun:
    """What one ``kfp.local`` pipeline run left behind, as the runner saw it."""

    usecase: str
    cfg: Any
    settings: KfpSettings
    root: Path
    run_dir: Path | None
    tasks: dict[str, dict[str, Any]]  # task -> executor_output.json
    pipeline_seconds: float
    failure: str | None
    log_path: Path


def run(request: RunRequest) -> RunResult:
    usecase = check_usecase(request.usecase)
    cfg = request.config
    out = Path(request.out_dir).resolve()
    settings = KfpSettings(image=request.options.get("image") or KfpSettings.from_env().image)
    root = _writable_dir(Path(request.options.get("pipeline_root") or out / "pipeline_root"))
    _check_local_inputs(usecase, cfg)
    arguments = {
        **pipeline_arguments(usecase, cfg),
        "mlflow_uri": request.tracking_uri or "",
        "run_name": f"kfp-{usecase}-{out.name}",
    }

    timer = StageTimer()
    started = now_iso()
    with timer.stage("setup"):
        import kfp.local

        pipeline = build_pipeline(usecase, settings)
    failure: str | None = None
    log_path = out / LOG_FILE
    t0 = time.perf_counter()
    with _local_session(out, log_path):
        kfp.local.init(
            runner=kfp.local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            workspace_root=str(out / "kfp_workspace"),
        )
        try:
            pipeline(**arguments)
        except RuntimeError as exc:
            failure = _failure_line(str(exc), log_path)
    run_dir = _run_dir(root, PIPELINE_NAMES[usecase])
    local = _LocalRun(
        usecase=usecase,
        cfg=cfg,
        settings=settings,
        root=root,
        run_dir=run_dir,
        tasks=_read_tasks(run_dir),
        pipeline_seconds=time.perf_counter() - t0,
        failure=failure,
        log_path=log_path,
    )
    return _result(local, timer, started)


# ---- before the run ----------------------------------------------------------------------


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


def _check_local_inputs(usecase: str, cfg: Any) -> None:
    """Fail before starting any process when a local data file or model folder is missing."""
    if usecase == "digits":
        if cfg.data.source in ("idx", "npz") and not Path(cfg.data.path).exists():
            raise DataError(f"{cfg.data.source} data not found: {cfg.data.path}")
        return
    for attr in ("data_path", "model_path"):
        value = getattr(cfg, attr, None)
        if value and not Path(value).exists():
            raise DataError(f"sentiment {attr.replace('_', ' ')} not found: {value}")


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
    log = _ANSI.sub("", log_path.read_text(errors="replace")) if log_path.is_file() else ""
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


# ---- reading the run back ----------------------------------------------------------------


def _run_dir(root: Path, pipeline_name: str) -> Path | None:
    runs = sorted(root.glob(f"{pipeline_name}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def _read_tasks(run_dir: Path | None) -> dict[str, dict[str, Any]]:
    """task name -> its executor_output.json (only tasks that completed have one)."""
    if run_dir is None:
        return {}
    tasks = {}
    for path in sorted(run_dir.glob(f"*/{EXECUTOR_OUTPUT}")):
        try:
            tasks[path.parent.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return tasks


def _artifact(tasks: dict[str, Any], task: str, output: str) -> dict[str, Any]:
    """The first artifact ``output`` of ``task`` ({} when the task did not complete)."""
    try:
        return dict(tasks[task]["artifacts"][output]["artifacts"][0])
    except (KeyError, IndexError, TypeError):
        return {}


def _component_timings(tasks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task: process start -> body (interpreter + KFP executor), core call, process life."""
    timings = {}
    for name, output in tasks.items():
        for entry in output.get("artifacts", {}).values():
            for art in entry.get("artifacts", []):
                stamp = art.get("metadata", {}).get(TIMING_KEY)
                if not stamp:
                    continue
                timings[name] = {
                    "stage": stamp["stage"],
                    "startup_s": stamp["entered"] - stamp["process_started"],
                    "core_s": stamp["core_seconds"],
                    "outputs_s": stamp["finished"] - stamp["entered"] - stamp["core_seconds"],
                    "process_s": stamp["finished"] - stamp["process_started"],
                }
    return timings


def _result(run: _LocalRun, timer: StageTimer, started: str) -> RunResult:
    usecase, cfg, tasks = run.usecase, run.cfg, run.tasks
    names = TASKS[usecase]
    dataset = _artifact(tasks, names["data"], "dataset")
    model = _artifact(tasks, names["model"], "model")
    metrics_art = _artifact(tasks, names["evaluate"], "metrics")
    evaluation = _artifact(tasks, names["evaluate"], "evaluation")
    report = _artifact(tasks, names["evaluate"], "report")
    promotion = _artifact(tasks, PROMOTE_TASK, "promotion")
    accuracy = tasks.get(names["evaluate"], {}).get("parameterValues", {}).get("Output")

    comp = _component_timings(tasks)
    by_stage = {str(t["stage"]): float(t["core_s"]) for t in comp.values()}
    core = {stage: by_stage[stage] for stage in _STAGE_ORDER if stage in by_stage}
    timings = {**core, **timer.timings}
    timings["kfp_overhead"] = max(run.pipeline_seconds - sum(core.values()), 0.0)

    gate = None
    if accuracy is not None:
        gate = check_gate(float(accuracy), float(cfg.threshold)).to_dict()
    status, error = _status(run.failure, gate, bool(promotion))
    meta = model.get("metadata", {})
    model_dir = Path(model["uri"]) / meta.get("model_subdir", "model") if model else None
    history_path = Path(model["uri"]) / meta.get("history_file", "history.json") if model else None
    artifacts = {}
    if model_dir is not None:
        artifacts["model"] = str(model_dir)
    if dataset:
        artifacts["data"] = str(Path(dataset["uri"]) / dataset["metadata"].get("data_file", ""))
    if evaluation:
        for name in evaluation.get("metadata", {}).get("files", []):
            artifacts[Path(name).stem] = str(Path(evaluation["uri"]) / name)
    if report:
        artifacts["report"] = report["uri"]
    if promotion:
        artifacts["promotion"] = str(Path(promotion["uri"]) / PROMOTION_FILE)

    history = []
    if history_path is not None and history_path.is_file():
        history = json.loads(history_path.read_text())
    return RunResult(
        tool="kfp",
        usecase=usecase,
        model=_model_label(usecase, cfg, meta),
        params=cfg.to_dict(),
        metrics=_scalars(metrics_art.get("metadata", {})),
        artifacts=artifacts,
        timings=timings,
        wall_time_s=timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status=status,
        error=error,
        gate=gate,
        tool_info={
            "pipeline": PIPELINE_NAMES[usecase],
            "pipeline_root": str(run.root),
            "pipeline_run_dir": str(run.run_dir) if run.run_dir else None,
            "task_dirs": {name: str(run.run_dir / name) for name in tasks} if run.run_dir else {},
            "promoted": bool(promotion),
            "image": run.settings.image,
            "components": comp,
            # Pipeline time outside the components' Python processes as they saw themselves:
            # KFP's dispatch, the shell wrapper and each interpreter's exit (torch's is 1-3 s).
            "pipeline_s": run.pipeline_seconds,
            "outside_processes_s": max(
                run.pipeline_seconds - sum(c["process_s"] for c in comp.values()), 0.0
            ),
            "log": str(run.log_path),
            "dataset": {k: v for k, v in dataset.get("metadata", {}).items() if k != TIMING_KEY},
            "mlflow": promotion.get("metadata", {}).get("mlflow") or None,
        },
        history=history,
        started_at=started,
        environment=environment_info(),
    )


def _status(
    failure: str | None, gate: dict[str, Any] | None, promoted: bool
) -> tuple[str, str | None]:
    if failure:
        return "failed", failure
    if gate is None:
        return "failed", "KFP pipeline finished without an evaluate-task output"
    if not gate["passed"]:
        return "gate_failed", (
            f"quality gate failed: accuracy {gate['value']:.4f} < {gate['threshold']:.4f}; "
            "promote-model skipped"
        )
    if not promoted:
        return "failed", "quality gate passed but promote-model did not run"
    return "ok", None


def _scalars(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}


def _model_label(usecase: str, cfg: Any, meta: dict[str, Any]) -> str:
    if usecase == "digits":
        return str(cfg.model)
    return str(meta.get("model_name") or getattr(cfg, "model_label", "distilbert"))


# ---- evidence ----------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    """What KFP itself recorded, re-read from the pipeline root (not from the result record)."""
    run_dir = result.tool_info.get("pipeline_run_dir")
    tasks = _read_tasks(Path(run_dir)) if run_dir else {}
    names = TASKS.get(result.usecase, TASKS["digits"])
    dataset = _artifact(tasks, names["data"], "dataset").get("metadata", {})
    model = _artifact(tasks, names["model"], "model")
    history = _artifact(tasks, names["model"], "history").get("metadata", {})
    metrics = _artifact(tasks, names["evaluate"], "metrics").get("metadata", {})
    confusion = _artifact(tasks, names["evaluate"], "confusion").get("metadata", {})
    evaluation = _artifact(tasks, names["evaluate"], "evaluation")
    report = _artifact(tasks, names["evaluate"], "report")

    model_meta = model.get("metadata", {})
    model_dir = Path(model["uri"]) / model_meta.get("model_subdir", "model") if model else None
    pngs = [f for f in evaluation.get("metadata", {}).get("files", []) if f.endswith(".png")]
    plots_on_disk = bool(pngs) and all((Path(evaluation["uri"]) / f).is_file() for f in pngs)
    report_on_disk = bool(report) and Path(report["uri"]).is_file()
    return {
        "params": bool(model_meta.get("params")),
        "per_epoch_metrics": any(k.startswith("epoch") for k in history),
        "final_metrics": "accuracy" in metrics,
        "model_artifact": model_dir is not None and any(model_dir.glob("*.safetensors")),
        "plots": bool(confusion.get("confusionMatrix")) and plots_on_disk and report_on_disk,
        "lineage": bool(dataset.get("source")) and bool(dataset.get("digest")),
        "run_state": all(task in tasks for task in names.values()),
    }
