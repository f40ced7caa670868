"""W&B's adapter: run the training script in this process as one offline W&B run, read the run
back with wandb's own reader and turn it into the common record.

``pipeline/train.py`` is what a W&B user writes; this module is the harness around it:

- bad input (missing data, a bad or unreachable MLflow URI) fails before anything is written;
- the run is offline, with every file under the request's run folder: ``WANDB_DIR`` is the run
  folder (the run lands in ``<run folder>/wandb/offline-run-<time>-<id>/``) and wandb's data,
  cache and config folders are under ``<run folder>/wandb/`` (artifact staging, logs: nothing
  in ``$HOME``); no API key reaches the run. wandb keeps the ``WANDB_DIR`` of its first setup
  for the whole process, so its setup is torn down before and after each run;
- everything in the record is read back from the run's ``.wandb`` log with ``wandb leet
  inspect`` (see :mod:`readback`): the core stages' own seconds from what the script stored
  (the dataset and model artifacts' metadata, the summary's ``evaluation``), the metrics, the
  gate and the model's aliases;
- timings: ``data``, ``train``/``model``, ``evaluate`` (the core's), ``tracking`` (MLflow
  logging, when asked), ``wandb_overhead`` (the rest of the run: ``wandb.init``, logging,
  artifact hashing, ``run.finish``), ``import`` (wandb and the script), ``readback``;
- :func:`evidence` reads the log again and checks the 7 items in it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.support.logs import one_line
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.wandb import readback
from mlopsbench.tools.wandb.readback import OfflineRun
from mlopsbench.usecases.common.modelfiles import holds_model
from mlopsbench.usecases.common.usecase import UseCase

TOOL = "wandb"
PIPELINE_MODULE = "mlopsbench.tools.wandb.pipeline.train"
READER = "wandb leet inspect --json / --summary --json"
# Never reach an offline run: nothing may be uploaded, whatever the user's shell holds.
UNSET_VARIABLES = ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_RUN_ID", "WANDB_RESUME")

__all__ = ["EVIDENCE_KEYS", "evidence", "run", "wandb_env"]


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder(TOOL, request, distributions=get_tool(TOOL).distributions)
    preflight(request, recorder.usecase)
    with recorder.stage("import"):
        wandb = importlib.import_module("wandb")
        pipeline = importlib.import_module(PIPELINE_MODULE)
    run_dir = Path(request.out_dir).resolve()
    error: Exception | None = None
    outputs: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        with offline_wandb(wandb, run_dir):
            outputs = pipeline.run_pipeline(
                recorder.usecase.name,
                request.config,
                run_dir,
                mlflow_uri=request.tracking_uri or "",
                show_progress=request.show_progress,
            )
    except MlopsbenchError:
        raise  # the user's input was bad: one line, as from every tool
    except Exception as exc:  # the run failed: wandb recorded it (exit code 1), so do we
        error = exc
    launched = time.perf_counter() - started
    folder = readback.find_run_folder(run_dir, outputs.get("run_id"))
    if folder is None:
        return recorder.failed(f"W&B run did not start: {one_line(error or Exception())}")
    with recorder.stage("readback"):
        back = readback.read_run(folder)
    return record(recorder, pipeline, back, launched, error)


def preflight(request: RunRequest, usecase: UseCase) -> None:
    """Missing local inputs and a bad or unreachable MLflow URI: one line, before any file."""
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)


def wandb_env(run_dir: Path) -> dict[str, str]:
    """An offline run whose files all stay in ``run_dir``."""
    home = run_dir / readback.RUNS_FOLDER
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",  # wandb-core would report its errors to W&B's host
        "WANDB_DIR": str(run_dir),
        "WANDB_DATA_DIR": str(home / "data"),  # artifact staging
        "WANDB_CACHE_DIR": str(home / "cache"),  # artifact cache, wandb-core's logs
        "WANDB_CONFIG_DIR": str(home / "config"),  # settings wandb would keep in ~/.config
    }


@contextlib.contextmanager
def offline_wandb(wandb: ModuleType, run_dir: Path) -> Iterator[None]:
    """The run's environment for the block, then the process's own again; the run folder
    tidied, whatever happened."""
    env = wandb_env(run_dir)
    saved = {name: os.environ.get(name) for name in (*env, *UNSET_VARIABLES)}
    wandb.teardown()  # a setup left by an earlier run would keep its WANDB_DIR
    os.environ.update(env)
    for name in UNSET_VARIABLES:
        os.environ.pop(name, None)
    try:
        yield
    except BaseException as exc:
        end_active_run(wandb, exc)
        raise
    finally:
        with contextlib.suppress(Exception):  # the run's own error is what matters
            wandb.teardown()
        for folder in (run_dir / readback.RUNS_FOLDER).glob("*run-*"):
            remove_empty_scratch(folder)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def end_active_run(wandb: ModuleType, exc: BaseException) -> None:
    """Finish a run the script left open when it failed, as W&B's exit hook would at the end
    of a script (exit code 1, 255 on Ctrl-C): here the process goes on."""
    run = wandb.run
    if run is not None:
        with contextlib.suppress(Exception):  # the run's own error is what matters
            run.finish(exit_code=255 if isinstance(exc, KeyboardInterrupt) else 1)


def remove_empty_scratch(folder: Path) -> None:
    """Drop the empty folders wandb leaves in the run's ``tmp/`` (``tmp/code``, for code
    saving, which is off): a finished run folder holds no empty folder."""
    scratch = folder / "tmp"
    for path in sorted(scratch.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty, or not a folder: kept
            path.rmdir()
    with contextlib.suppress(OSError):
        scratch.rmdir()


# ------------------------------------------------------------------------------------------
# the record, from what the run's log holds
# ------------------------------------------------------------------------------------------


def stage_outputs(back: OfflineRun) -> dict[str, dict[str, Any]]:
    """What each core stage returned, as the script stored it in the run: the dataset's and
    the model's artifact metadata, the summary's ``evaluation``."""
    evaluation = back.summary.get("evaluation")
    return {
        "prepare_data": back.artifact("dataset").get("metadata", {}),
        "build_model": back.artifact("model").get("metadata", {}),
        "evaluate_model": evaluation if isinstance(evaluation, dict) else {},
    }


def run_timings(usecase: UseCase, back: OfflineRun, launched_s: float) -> dict[str, float]:
    """The core's seconds as the stages reported them; MLflow's when it was logged to; the rest
    of the run is W&B's."""
    timings = core_timings(usecase, stage_outputs(back))
    mlflow_seconds = (back.summary.get("mlflow") or {}).get("seconds")
    if isinstance(mlflow_seconds, int | float):
        timings["tracking"] = float(mlflow_seconds)
    timings["wandb_overhead"] = max(launched_s - sum(timings.values()), 0.0)
    return timings


def record(
    recorder: RunRecorder,
    pipeline: ModuleType,
    back: OfflineRun,
    launched_s: float,
    error: Exception | None,
) -> RunResult:
    outputs = stage_outputs(back)
    model = outputs["build_model"]
    common: dict[str, Any] = {
        "tool_info": tool_info(pipeline, back, outputs),
        "artifacts": artifact_paths(back, outputs),
        "history": history_of(back),
        "timings": run_timings(recorder.usecase, back, launched_s),
    }
    if error is not None or back.state != "finished":
        reason = one_line(error) if error else f"exit code {back.exit_code}"
        return recorder.failed(
            f"W&B run {back.run_id} {back.state or 'failed'}: {reason}", **common
        )
    return recorder.finish(
        metrics=final_metrics(back),
        gate=outputs["evaluate_model"].get("gate"),
        model=model.get("model_name"),
        params=back.config,
        **common,
    )


def tool_info(
    pipeline: ModuleType, back: OfflineRun, outputs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    model_artifact = back.artifact("model")
    aliases = list(model_artifact.get("aliases") or [])
    built = outputs["build_model"]
    info: dict[str, Any] = {
        "run_id": back.run_id,
        "project": back.overview.get("project"),
        "run_folder": str(back.file.parent),
        "wandb_file": str(back.file),
        "state": back.state,
        "exit_code": back.exit_code,
        "tags": back.tags,
        "reader": READER,
        "dataset": {
            k: v for k, v in outputs["prepare_data"].items() if k not in ("data_path", "seconds")
        },
        "dataset_artifact": _artifact_ref(back.artifact("dataset")),
        "model_artifact": _artifact_ref(model_artifact),
        "model_aliases": aliases,
        "promoted": pipeline.CHAMPION in aliases,
        "git_commit": back.git_commit,
        "mlflow": back.summary.get("mlflow") or {},
        **{k: built[k] for k in ("precision", "device") if k in built},  # digits
    }
    inference = outputs["evaluate_model"].get("inference")
    if inference:  # sentiment: the precision actually used, throughput
        info["inference"] = inference
    return info


def artifact_paths(back: OfflineRun, outputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The core's files the artifacts name, the run's log and W&B's copies of the plots."""
    found = {
        "data": outputs["prepare_data"].get("data_path"),
        "model": outputs["build_model"].get("model_dir"),
        "history": outputs["build_model"].get("history_path"),
        "wandb_run": str(back.file),
        **{
            key.removeprefix("plots/"): str(back.files_dir / value["path"])
            for key, value in _media(back, "image-file").items()
        },
    }
    return {name: str(path) for name, path in found.items() if path}


def final_metrics(back: OfflineRun) -> dict[str, float]:
    """The summary's numbers that no step logged: the evaluation's scores (a logged key's
    summary value is only its last step's; wandb's own keys start with ``_``)."""
    logged = {key for row in back.history for key in row}
    return {
        k: v
        for k, v in back.summary.items()
        if k not in logged and not k.startswith("_") and _is_number(v)
    }


def history_of(back: OfflineRun) -> list[dict[str, float]]:
    """The per-epoch rows the run logged (``_step`` is the epoch), as the core wrote them."""
    keys = _history_keys(back)
    return [
        {"epoch": row["_step"], **{k: row[k] for k in keys}}
        for row in back.history
        if keys and all(k in row for k in keys)
    ]


def _history_keys(back: OfflineRun) -> list[str]:
    """Scalar keys the run logged per step (not wandb's own ``_*`` keys, not media)."""
    first = back.history[0] if back.history else {}
    return [k for k, v in first.items() if not k.startswith("_") and "." not in k and _is_number(v)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _media(back: OfflineRun, kind: str) -> dict[str, dict[str, Any]]:
    """Summary entries of one media type (``image-file``, ``table-file``) by key."""
    return {
        key: value
        for key, value in back.summary.items()
        if isinstance(value, dict) and value.get("_type") == kind
    }


def _artifact_ref(artifact: dict[str, Any]) -> dict[str, Any]:
    return {k: artifact.get(k) for k in ("name", "type", "digest", "aliases") if artifact}


# ------------------------------------------------------------------------------------------
# evidence: what the run's .wandb log really holds, read again with wandb's reader
# ------------------------------------------------------------------------------------------


def evidence(result: RunResult) -> dict[str, bool]:
    folder = result.tool_info.get("run_folder")
    if not folder or not Path(folder).is_dir():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    back = readback.read_run(folder)
    return {
        "params": _has_params(back, result),
        "per_epoch_metrics": _has_history(back, result),
        "final_metrics": _has_final_metrics(back, result),
        "model_artifact": _has_model(back),
        "plots": _has_plots(back),
        "lineage": _has_lineage(back, result),
        "run_state": back.state == ("failed" if result.status == "failed" else "finished"),
    }


def _has_params(back: OfflineRun, result: RunResult) -> bool:
    config = back.config
    return bool(result.params) and all(
        k in config and config[k] == v for k, v in result.params.items()
    )


def _has_history(back: OfflineRun, result: RunResult) -> bool:
    """One logged row per epoch of the core's history, at step = epoch, with its values."""
    if not result.history:
        return False
    keys = [k for k in result.history[0] if k != "epoch"]
    rows = {int(row["_step"]): row for row in back.history if all(k in row for k in keys)}
    return all(
        int(h["epoch"]) in rows and all(rows[int(h["epoch"])][k] == h[k] for k in keys)
        for h in result.history
    )


def _has_final_metrics(back: OfflineRun, result: RunResult) -> bool:
    summary = back.summary
    return "accuracy" in result.metrics and all(
        isinstance(summary.get(k), int | float) and abs(summary[k] - v) < 1e-9
        for k, v in result.metrics.items()
    )


def _has_model(back: OfflineRun) -> bool:
    """A model artifact whose manifest lists non-empty safetensors weights (or the reference to
    a checkpoint used as it is), present with the recorded size where the manifest says."""
    entries = back.artifact("model").get("manifest", {}).get("contents", [])
    model = [e for e in entries if holds_model({str(e.get("path", "")): e.get("size")})]
    return bool(model) and all(_file_matches(e.get("local_path"), e.get("size")) for e in model)


def _has_plots(back: OfflineRun) -> bool:
    """Images and a table in the summary, each file in the run folder with its recorded size."""
    images, tables = _media(back, "image-file"), _media(back, "table-file")
    media = [*images.values(), *tables.values()]
    return (
        bool(images)
        and bool(tables)
        and all(_file_matches(back.files_dir / str(m.get("path")), m.get("size")) for m in media)
    )


def _has_lineage(back: OfflineRun, result: RunResult) -> bool:
    """The dataset artifact (the core's digest in its metadata) and the model artifact that
    names it (its W&B digest), both logged by this run."""
    dataset, model = back.artifact("dataset"), back.artifact("model")
    if not dataset or not model:
        return False
    core_digest = result.tool_info.get("dataset", {}).get("digest")
    named = model.get("metadata", {}).get("dataset", {})
    return named.get("digest") == dataset.get("digest") and (
        core_digest is None or dataset.get("metadata", {}).get("digest") == core_digest
    )


def _file_matches(path: Any, size: Any) -> bool:
    try:
        return path is not None and Path(path).stat().st_size == int(size) > 0
    except (OSError, TypeError, ValueError):
        return False
