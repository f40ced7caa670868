"""Run the Metaflow flows from the harness: Runner API in, Client API out, card to HTML.

``run(request)`` launches ``digits_flow.py`` or ``sentiment_flow.py`` with ``metaflow.Runner``
in the request's run folder (so the datastore is ``<run dir>/.metaflow`` and step files are
``<run dir>/steps/<run id>/``), then reads everything back through the Client API: run state,
the end step's artifacts (params, metrics, history, dataset lineage), per-step timings from
task metadata, and the failing step's exception when a step raised. The evaluate card is
exported with ``python <flow>.py card get`` (never ``card server``: it binds all interfaces).

``resume(request, origin_run_id)`` resumes a failed run in the same folder: Metaflow clones the
steps that succeeded (train is not re-run) and re-executes the rest.

``request.options`` (strings): ``metaflow_user`` (else ``$METAFLOW_USER``/``$USER``),
``threads`` (OMP/MKL threads of the step processes), ``fail_step`` (make that step raise: shows
failure handling and ``resume``).

``evidence(result)`` re-opens the run through the Client API and reports what Metaflow itself
stored (params, per-epoch history, metrics, model bytes, card images, lineage, run state).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError
from mlopsbench.result import (
    EVIDENCE_KEYS,
    RunRequest,
    RunResult,
    StageTimer,
    environment_info,
    now_iso,
    peak_rss_mb,
)

FLOW_DIR = Path(__file__).resolve().parent
DATASTORE_DIR = ".metaflow"
CLIENT_CACHE_DIR = ".metaflow_client"
CARD_FILE = "card.html"
CARD_ID = "evaluation"

# Step name -> the core-stage timing key measured inside that step.
# Steps of both flows, latest first: where the most complete set of artifacts lives.
STEP_ORDER = ("end", "evaluate", "train", "load_model", "load_data", "start")
STEP_STAGES = {
    "load_data": "data",
    "train": "train",
    "load_model": "model",
    "evaluate": "evaluate",
    "end": "tracking",  # only when the run logs to MLflow
}


@dataclass(frozen=True)
class FlowInfo:
    file: Path
    name: str


FLOWS = {
    "digits": FlowInfo(FLOW_DIR / "digits_flow.py", "DigitsFlow"),
    "sentiment": FlowInfo(FLOW_DIR / "sentiment_flow.py", "SentimentFlow"),
}


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def run(request: RunRequest) -> RunResult:
    """Run the use case's flow once and return the common result record."""
    return _execute(request, resume_from=None)


def resume(request: RunRequest, origin_run_id: str) -> RunResult:
    """Resume a failed run of the same flow in the same run folder (succeeded steps are cloned)."""
    return _execute(request, resume_from=str(origin_run_id))


def evidence(result: RunResult) -> dict[str, bool]:
    """What Metaflow really recorded for this run, read from its datastore via the Client API."""
    keys = EVIDENCE_KEYS
    pathspec, run_dir = result.tool_info.get("pathspec"), result.tool_info.get("run_dir")
    if not pathspec or not run_dir or not (Path(run_dir) / DATASTORE_DIR).is_dir():
        return dict.fromkeys(keys, False)
    from metaflow import Run

    with client_scope(Path(run_dir)):
        mf_run = Run(pathspec, _namespace_check=False, _current_metadata=f"local@{run_dir}")
        found = {
            "params": _has_params(mf_run),
            "per_epoch_metrics": bool(_artifact(mf_run, "history")),
            "final_metrics": "accuracy" in (_artifact(mf_run, "metrics") or {}),
            "model_artifact": _has_model(mf_run),
            "plots": _card_has_images(mf_run),
            "lineage": _has_lineage(mf_run),
            "run_state": bool(mf_run.finished and mf_run.successful),
        }
    return found


# ---------------------------------------------------------------------------------------------
# configuration -> flow parameters and environment
# ---------------------------------------------------------------------------------------------


def flow_info(usecase: str) -> FlowInfo:
    if usecase not in FLOWS:
        raise ConfigError(f"unknown use case {usecase!r}; choose digits or sentiment")
    info = FLOWS[usecase]
    if not info.file.is_file():
        raise ConfigError(
            f"the {usecase} Metaflow flow is not available ({info.file.name} missing)"
        )
    return info


def flow_parameters(usecase: str, cfg: Any, tracking_uri: str | None) -> dict[str, Any]:
    """The flow's Parameters for a core config (names as in the FlowSpec)."""
    if usecase == "digits":
        params: dict[str, Any] = {
            "model": cfg.model,
            "epochs": cfg.epochs,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "threshold": cfg.threshold,
            "precision": cfg.precision,
            "device": cfg.device,
            "data_source": cfg.data.source,
            "data_path": cfg.data.path or "",
            "test_fraction": cfg.data.test_fraction,
            "split_seed": cfg.data.split_seed,
            "limit_train": cfg.data.limit_train or 0,
        }
    else:
        params = {  # None in the core config -> 0 / "" (the flow's "use the default")
            "smoke": cfg.smoke,
            "model_path": cfg.model_path or "",
            "model_name": cfg.model_name,
            "data_source": cfg.source or "",
            "data_path": cfg.data_path or "",
            "sample_size": cfg.sample_size or 0,
            "seed": cfg.seed,
            "max_length": cfg.max_length,
            "truncation": cfg.truncation,
            "batch_size": cfg.batch_size,
            "fine_tune": cfg.fine_tune,
            "fine_tune_epochs": cfg.fine_tune_epochs or 0,
            "fine_tune_lr": cfg.fine_tune_lr or 0.0,
            "fine_tune_batch_size": cfg.fine_tune_batch_size,
            "train_sample_size": cfg.train_sample_size or 0,
            "threshold": cfg.threshold,
            "precision": cfg.precision,
            "device": cfg.device,
        }
    params["mlflow_uri"] = tracking_uri or ""
    return params


def resolve_user(options: Mapping[str, str]) -> str:
    """The user name Metaflow records (its namespace); Metaflow rejects none and ``root``."""
    candidates = [options.get("metaflow_user"), os.environ.get("METAFLOW_USER")]
    candidates += [os.environ.get(name) for name in ("SUDO_USER", "USERNAME", "USER", "LOGNAME")]
    with suppress(OSError, KeyError):  # no passwd entry for this uid (some containers)
        candidates.append(getpass.getuser())
    for user in candidates:
        if user and user.strip() and user != "root":
            return user.strip()
    raise ConfigError(
        "Metaflow needs a user name and refuses 'root': set METAFLOW_USER (e.g. "
        "export METAFLOW_USER=$(whoami)-bench)"
    )


def flow_env(run_dir: Path, user: str, request: RunRequest) -> dict[str, str]:
    """Environment for the flow's processes: isolated user, client cache, quiet tools."""
    env = {
        "METAFLOW_USER": user,
        "METAFLOW_CLIENT_CACHE_PATH": str(run_dir / CLIENT_CACHE_DIR),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # The flow decides from its mlflow_uri Parameter alone, not from the caller's env.
        "MLFLOW_TRACKING_URI": "",
    }
    threads = request.options.get("threads")
    if threads:  # e.g. "1" on a shared machine, where OpenMP spinning slows t-SNE a lot
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
    fail_step = request.options.get("fail_step")
    if fail_step:
        from mlopsbench.tools.metaflow.flow_support import FAIL_STEP_ENV

        env[FAIL_STEP_ENV] = fail_step
    return env


def _preflight(request: RunRequest) -> None:
    """Bad local paths fail here, before any process starts."""
    cfg = request.config
    path = cfg.data.path if request.usecase == "digits" else getattr(cfg, "data_path", None)
    if path and not Path(path).expanduser().exists():
        raise DataError(f"data path does not exist: {path}")
    model_path = getattr(cfg, "model_path", None)
    if model_path and not Path(model_path).expanduser().is_dir():
        raise DataError(f"model path is not a folder: {model_path}")


# ---------------------------------------------------------------------------------------------
# execution
# ---------------------------------------------------------------------------------------------


def _execute(request: RunRequest, resume_from: str | None) -> RunResult:
    info = flow_info(request.usecase)
    user = resolve_user(request.options)
    _preflight(request)
    run_dir = Path(request.out_dir).resolve()
    # An existing .metaflow here stops Metaflow from walking up to a datastore in a parent folder.
    (run_dir / DATASTORE_DIR).mkdir(parents=True, exist_ok=True)
    env = flow_env(run_dir, user, request)
    timer, started = StageTimer(), now_iso()
    with client_scope(run_dir):
        with timer.stage("metaflow_run"):
            launched = _launch(info, request, run_dir, env, resume_from)
        with timer.stage("readback"):
            back = read_run(launched["run"])
            back["overhead"] = overhead_breakdown(back, launched["at"], launched["returned"])
        card_path = None
        if back["evaluate_task"]:
            with timer.stage("card_export"):
                card_path = export_card(info, back["evaluate_task"], run_dir, env)
    return _to_result(
        request, info, run_dir, back, card_path, timer, started, launched["error"], user
    )


def _launch(
    info: FlowInfo,
    request: RunRequest,
    run_dir: Path,
    env: Mapping[str, str],
    resume_from: str | None,
) -> dict[str, Any]:
    """Run (or resume) the flow with the Runner API; block until it ends, failed or not."""
    runner_class = import_runner()
    with runner_class(
        str(info.file),
        show_output=request.show_progress,
        cwd=str(run_dir),
        env=dict(env),
        pylint=False,
    ) as runner:
        at = time.time()  # wall clock, to compare with Metaflow's task timestamps
        try:
            if resume_from is None:
                params = flow_parameters(request.usecase, request.config, request.tracking_uri)
                executing = runner.run(**params)
            else:
                executing = runner.resume(origin_run_id=resume_from)
        except RuntimeError as exc:  # the process died before it had a run id
            raise MlopsbenchError(
                f"metaflow could not start {info.name}: {_last_line(exc)}"
            ) from None
        failed = executing.status != "successful"
        return {
            "run": executing.run,
            "at": at,
            "returned": time.time(),
            "error": _last_line(executing.stderr) if failed else "",
        }


def import_runner() -> Any:
    """``metaflow.Runner``, imported without breaking a later ``import torch`` in this process.

    The Runner imports Metaflow's vendored typing_extensions, which replaces
    ``typing._collect_parameters``. When the real typing_extensions was imported first (rich,
    typer, pytest do), TypeVars it makes later are then judged against the vendored sentinel and
    ``import torch`` raises "Type parameter ... without a default follows type parameter with a
    default". Keeping the function that was active before avoids it.
    """
    import typing

    saved = getattr(typing, "_collect_parameters", None)
    try:
        import metaflow.runner.click_api  # noqa: F401 (the import that patches typing)
        from metaflow import Runner
    finally:
        if saved is not None:
            typing._collect_parameters = saved  # type: ignore[attr-defined]
    return Runner


def read_run(mf_run: Any) -> dict[str, Any]:
    """Everything the result record needs, from the Client API."""
    steps: dict[str, dict[str, Any]] = {}
    failure = None
    evaluate_task = None
    for step in mf_run:  # newest step first
        task = step.task
        cloned_from = task.origin_pathspec
        seconds = (task.finished_at - task.created_at).total_seconds() if task.finished_at else None
        steps[step.id] = {
            "seconds": seconds,
            "started": task.created_at.timestamp(),  # epoch seconds (ms resolution)
            "finished": task.finished_at.timestamp() if task.finished_at else None,
            "successful": bool(task.successful),
            "cloned_from": cloned_from,
            "pathspec": task.pathspec,
        }
        if not task.successful and task.exception is not None:
            failure = (step.id, task.exception)
        if step.id == "evaluate" and task.successful:
            evaluate_task = task.pathspec
    graph = list(reversed(STEP_ORDER))  # start -> end (the Client lists by creation time)
    steps = dict(sorted(steps.items(), key=lambda kv: graph.index(kv[0]) if kv[0] in graph else 99))
    data = _latest_data(mf_run)
    git = _git_info(mf_run)
    return {
        "run_id": mf_run.id,
        "pathspec": mf_run.pathspec,
        "successful": bool(mf_run.successful),
        "origin": _origin(mf_run),
        "steps": steps,
        "failure": failure,
        "evaluate_task": evaluate_task,
        "data": data,
        "git": git,
    }


def _origin(mf_run: Any) -> str | None:
    """The run this one resumed, if any (Metaflow writes the literal 'None' otherwise)."""
    origin = mf_run.origin_pathspec
    return None if not origin or origin.endswith("/None") else str(origin)


def _latest_data(mf_run: Any) -> dict[str, Any]:
    """Artifacts of the latest successful step (end, or the last that ran before a failure)."""
    wanted = (
        "params",
        "metrics",
        "gate",
        "history",
        "dataset",
        "stage_seconds",
        "artifact_paths",
        "train_info",
        "mlflow",
        "inference",
        "model_label",
    )
    task = _latest_successful_task(mf_run)
    return {name: task[name].data for name in wanted if name in task} if task else {}


def _latest_successful_task(mf_run: Any) -> Any:
    """The last step in graph order that succeeded (after resume, step order is by creation)."""
    names = {step.id: step for step in mf_run}
    for name in STEP_ORDER:
        if name in names and names[name].task.successful:
            return names[name].task
    return None


def _git_info(mf_run: Any) -> dict[str, str]:
    """Metaflow records the flow file's git branch and commit in each task's metadata."""
    import json

    try:
        meta = mf_run["start"].task.metadata_dict
        return dict(json.loads(meta.get("git-info", "{}")))
    except (KeyError, ValueError):
        return {}


def export_card(
    info: FlowInfo, task_pathspec: str, run_dir: Path, env: Mapping[str, str]
) -> str | None:
    """``python <flow>.py card get <run>/evaluate/<task> card.html``; None if it did not work."""
    _, run_id, step, task_id = task_pathspec.split("/")
    out = run_dir / CARD_FILE
    cmd = [
        sys.executable,
        str(info.file),
        "--quiet",
        "card",
        "get",
        "--id",
        CARD_ID,
        f"{run_id}/{step}/{task_id}",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        cwd=run_dir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return str(out) if proc.returncode == 0 and out.is_file() else None


def _to_result(
    request: RunRequest,
    info: FlowInfo,
    run_dir: Path,
    back: dict[str, Any],
    card_path: str | None,
    timer: StageTimer,
    started: str,
    launch_error: str,
    user: str,
) -> RunResult:
    data = back["data"]
    cfg = request.config
    ran = {s: v for s, v in back["steps"].items() if not v["cloned_from"]}
    stage_seconds = data.get("stage_seconds", {})
    timings = {
        STEP_STAGES[s]: stage_seconds[STEP_STAGES[s]]
        for s in ran
        if s in STEP_STAGES and STEP_STAGES[s] in stage_seconds
    }
    core = sum(timings.values())
    timings["metaflow_overhead"] = max(timer.timings["metaflow_run"] - core, 0.0)
    timings.update({k: timer.timings[k] for k in ("readback", "card_export") if k in timer.timings})
    status, error = _status(back, data, launch_error)
    artifacts = {**data.get("artifact_paths", {}), "datastore": str(run_dir / DATASTORE_DIR)}
    if card_path:
        artifacts["card"] = card_path
    return RunResult(
        tool="metaflow",
        usecase=request.usecase,
        model=str(data.get("model_label") or getattr(cfg, "model_label", "") or cfg.model),
        params=data.get("params") or cfg.to_dict(),
        metrics=data.get("metrics", {}),
        artifacts=artifacts,
        timings=timings,
        wall_time_s=timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status=status,
        error=error,
        gate=data.get("gate"),
        tool_info={
            "flow": info.name,
            "run_id": back["run_id"],
            "pathspec": back["pathspec"],
            "run_dir": str(run_dir),
            "datastore": str(run_dir / DATASTORE_DIR),
            "card": card_path,
            "user": user,
            "origin_run": back["origin"],
            "cloned_steps": [s for s, v in back["steps"].items() if v["cloned_from"]],
            "steps": _step_timings(back["steps"], stage_seconds),
            "overhead": back["overhead"],
            "dataset": data.get("dataset", {}),
            "git": back["git"],
            "mlflow": data.get("mlflow") or {},
            "resume_command": f"cd {run_dir} && METAFLOW_USER={user} {sys.executable} "
            f"{info.file} resume --origin-run-id {back['run_id']}",
            **data.get("train_info", {}),  # digits: precision, device
            **({"inference": data["inference"]} if data.get("inference") else {}),  # sentiment
        },
        history=data.get("history", []),
        started_at=started,
        environment=environment_info(),
    )


def _status(
    back: dict[str, Any], data: dict[str, Any], launch_error: str
) -> tuple[str, str | None]:
    if not back["successful"]:
        if back["failure"]:
            step, exc = back["failure"]
            kind = str(getattr(exc, "type", "Exception")).rsplit(".", 1)[-1]
            message = _last_line(getattr(exc, "exception", "")) or "no message"
            return (
                "failed",
                f"metaflow run {back['pathspec']} failed in step {step}: {kind}: {message}",
            )
        return (
            "failed",
            f"metaflow run {back['pathspec']} failed: {launch_error or 'unknown error'}",
        )
    gate = data.get("gate") or {}
    if gate and not gate.get("passed", False):
        return "gate_failed", "quality gate failed"
    return "ok", None


def _step_timings(
    steps: Mapping[str, Mapping[str, Any]], stage_seconds: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Seconds per step task (process start to finish) and how much of it was not core work."""
    table = {}
    for name, step in steps.items():
        seconds = step["seconds"]
        # A cloned step (resume) did no core work in this run: its seconds are the clone's.
        core = 0.0 if step["cloned_from"] else stage_seconds.get(STEP_STAGES.get(name, ""), 0.0)
        table[name] = {
            "seconds": round(seconds, 3) if seconds is not None else None,
            "core_seconds": round(core, 3),
            "overhead_s": round(seconds - core, 3) if seconds is not None else None,
            "cloned": bool(step["cloned_from"]),
        }
    return table


def overhead_breakdown(
    back: Mapping[str, Any], launched: float, returned: float
) -> dict[str, float]:
    """Where Metaflow's own time goes, from task timestamps (epoch seconds).

    ``launch_s``: from calling the Runner to the first task (CLI start, graph validation);
    ``in_steps_s``: inside step tasks but outside the core (process start, imports of Metaflow,
    artifact (de)serialisation, card rendering); ``between_steps_s``: gaps between one task
    finishing and the next starting (process exit, scheduler polling); ``after_s``: from the
    last task to the Runner returning.
    """
    stage_seconds = back.get("data", {}).get("stage_seconds", {})
    steps = sorted(
        (s for s in back["steps"].values() if s["finished"] is not None),
        key=lambda s: s["started"],
    )
    if not steps:
        return {"launch_s": round(returned - launched, 3)}
    in_steps = 0.0
    for name, step in back["steps"].items():
        if step["finished"] is None:
            continue
        core = 0.0 if step["cloned_from"] else stage_seconds.get(STEP_STAGES.get(name, ""), 0.0)
        in_steps += step["finished"] - step["started"] - core
    between = sum(max(0.0, b["started"] - a["finished"]) for a, b in pairwise(steps))
    return {
        "launch_s": round(steps[0]["started"] - launched, 3),
        "in_steps_s": round(in_steps, 3),
        "between_steps_s": round(between, 3),
        "after_s": round(returned - steps[-1]["finished"], 3),
    }


def _last_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# Client API helpers
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


def _artifact(mf_run: Any, name: str) -> Any:
    task = _latest_successful_task(mf_run)
    return task[name].data if task is not None and name in task else None


def _has_params(mf_run: Any) -> bool:
    params = _artifact(mf_run, "params") or {}
    start = mf_run["start"].task
    # Metaflow stores each Parameter as an artifact of every task; check they match the record.
    return bool(params) and all(
        name not in start or start[name].data == value
        for name, value in params.items()
        if name in ("epochs", "lr", "batch_size", "seed", "threshold")
    )


def _has_model(mf_run: Any) -> bool:
    """Model bytes in the datastore (a pre-trained checkpoint kept by reference does not count)."""
    return any(bool(_artifact(mf_run, name)) for name in ("model_weights", "model_files"))


def _card_has_images(mf_run: Any) -> bool:
    from metaflow.cards import get_cards

    try:
        cards = get_cards(mf_run["evaluate"].task, id=CARD_ID)
        return any(len(card_images(card.get())) >= 2 for card in cards)
    except Exception:  # no evaluate step, no card: the evidence is simply missing
        return False


def card_components(html: str) -> list[dict[str, Any]]:
    """The components of a Metaflow card (its HTML embeds them as base64-encoded JSON)."""
    import base64
    import json
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


def _has_lineage(mf_run: Any) -> bool:
    dataset = _artifact(mf_run, "dataset") or {}
    return bool(dataset.get("source") and dataset.get("digest")) or bool(_git_info(mf_run))
