"""``mlopsbench compare``: the same use case on every tool, each in its own process, measured.

Runs are interleaved (repeat 1 of every tool, then repeat 2...) so slow drifts in machine load
spread over all tools instead of biasing the last one. Every finished run is appended to
``results.jsonl`` at once; a failing or missing tool becomes a failure row and the others go on.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.bench import results as rs
from mlopsbench.bench.spawn import ChildOutcome, run_child
from mlopsbench.errors import ConfigError, MlopsbenchError
from mlopsbench.support.logs import log_reason

DEFAULT_TIMEOUT_S = 900.0
# Files the core stages write, newest first: how the progress display names the running stage.
STAGE_MARKERS = (("metrics.json", "finishing"), ("model.safetensors", "evaluate"))


@dataclass(frozen=True)
class CompareConfig:
    """Everything one compare does; built by the CLI, passed explicitly."""

    usecase: str
    tools: tuple[str, ...]
    models: tuple[Any, ...]  # values of the use case's run axis (``model``); () = the config's
    repeats: int
    config: dict[str, Any]  # flat use-case config shared by every run (model set per run)
    out_dir: Path
    threads: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    tolerance: float = 0.005
    tracking_uri: str | None = None
    profile: str | None = None
    weights_file: Path | None = None
    measure_install: bool = False
    measure_servers: bool = False
    command: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # recorded in the meta row as given

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1, got {self.repeats}")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0, got {self.threads}")
        if not self.tools:
            raise ConfigError("no tools to compare")
        if self.timeout_s <= 0:
            raise ConfigError(f"--timeout must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class RunSpec:
    tool: str
    model: str
    repeat: int
    config: dict[str, Any]

    @property
    def run_id(self) -> str:
        """``mlflow-cnn-r1``; a tool at another version: ``mlflow-3.5.0-cnn-r1``."""
        return f"{self.tool.replace('==', '-')}-{self.model}-r{self.repeat}"


@dataclass
class CompareOutcome:
    out_dir: Path
    results: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False


def plan_runs(cfg: CompareConfig) -> list[RunSpec]:
    """Interleaved: for each repeat, each model, each tool (plain first when present)."""
    from mlopsbench.usecases.registry import get_usecase

    usecase = get_usecase(cfg.usecase)
    tools = sorted(cfg.tools, key=lambda t: (t != "plain", cfg.tools.index(t)))
    axis = usecase.run_axis
    configs = [{**cfg.config, axis: m} for m in cfg.models] if cfg.models else [cfg.config]
    specs: list[RunSpec] = []
    for repeat in range(1, cfg.repeats + 1):
        for config in configs:
            label = usecase.model_label(usecase.config(config))
            specs.extend(RunSpec(tool, label, repeat, dict(config)) for tool in tools)
    return specs


def child_env(cfg: CompareConfig, run_dir: Path, tmp_dir: Path) -> dict[str, str]:
    """The worker's environment: same for every tool, quiet, offline-safe, isolated homes."""
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
            "TMPDIR": str(tmp_dir),  # KFP/torch leave temp folders: keep them in the compare dir
        }
    )
    if cfg.threads > 0:
        # One fixed thread count for every tool: on a small shared machine OpenMP's default
        # oversubscribes (t-SNE went from 2.5 s to 39 s under load) and makes timings noise.
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(cfg.threads)
    # `import airflow` without AIRFLOW_HOME creates ~/airflow; Metaflow needs a user name.
    env.setdefault("AIRFLOW_HOME", str(run_dir / "airflow-home"))
    # Metaflow refuses a missing user and "root" (CI, containers): name the bench's runs.
    if not env.get("METAFLOW_USER") and env.get("USER", "root") in ("", "root"):
        env["METAFLOW_USER"] = "mlopsbench"
    env.pop("MLFLOW_TRACKING_URI", None)  # tools log where the request says, nowhere else
    if cfg.tracking_uri:  # every tool also logs to MLflow: the client from MLflow's environment
        from mlopsbench.toolkit.envs import TRACKING_TOOL, integration_env

        env.update(integration_env(TRACKING_TOOL, ""))
    return env


def current_stage(usecase: str, run_dir: Path, status_path: Path) -> str:
    """A short label for the progress display: worker phase, then the newest core-stage file."""
    from mlopsbench.usecases.registry import get_usecase

    try:
        phase = json.loads(status_path.read_text())["phase"]
    except (OSError, ValueError, KeyError):
        return "starting"
    if phase != "run":
        return {"import": "importing tool", "evidence": "reading back", "done": "done"}.get(
            phase, phase
        )
    seen = _files_under(run_dir)
    model_stage = get_usecase(usecase).model_stage
    for marker, label in (*STAGE_MARKERS, (get_usecase(usecase).data_file, model_stage)):
        if marker in seen:
            return label
    return "data"


def _files_under(root: Path, limit: int = 5000) -> set[str]:
    names: set[str] = set()
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("logs", "__pycache__", "airflow-home")]
        names.update(filenames)
        if len(names) > limit:
            break
    return names


def _measure_row(
    payload: dict[str, Any] | None, outcome: ChildOutcome, error: str | None, ended_at: float
) -> dict[str, Any]:
    worker = (payload or {}).get("worker", {})
    finished = worker.get("finished_at")
    evidence_s = float(worker.get("evidence_s", 0.0))
    timings = (payload or {}).get("timings", {}) or {}
    return {
        "process_wall_s": outcome.wall_s,
        "wall_s": max(
            0.0, outcome.wall_s - evidence_s
        ),  # the read-back is the harness's, not the tool's
        "startup_s": float(worker.get("startup_s", 0.0)),
        "import_s": float(worker.get("import_s", 0.0)) + float(timings.get("import", 0.0)),
        "run_s": float(worker.get("run_s", 0.0)),
        "evidence_s": evidence_s,
        # interpreter shutdown after the result was written (torch & co. unloading)
        "teardown_s": max(0.0, ended_at - float(finished)) if finished else None,
        "cpu_s": outcome.cpu_s,
        "peak_rss_mb": outcome.peak_rss_mb,
        "tree_peak_rss_mb": outcome.tree_peak_rss_mb,
        "returncode": outcome.returncode,
        "timed_out": outcome.timed_out,
        "error": error,
    }


def run_row(
    spec: RunSpec,
    cfg: CompareConfig,
    tmp_dir: Path,
    on_poll: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Run one spec in a worker process and return its results row (never raises for tool errors)."""
    from mlopsbench.errors import MlopsbenchError
    from mlopsbench.toolkit.envs import EnvSpec, python_for, variant_options

    base = {
        "kind": "run",
        "id": spec.run_id,
        "tool": spec.tool,
        "usecase": cfg.usecase,
        "model": spec.model,
        "repeat": spec.repeat,
        "config": spec.config,
    }
    env = EnvSpec.parse(spec.tool)
    try:
        python = python_for(env)  # the CLI created missing environments before the runs
    except MlopsbenchError as exc:
        return {
            **base,
            "status": "missing",
            "error": f"tool not available: {exc}",
            "result": None,
            "evidence": None,
            "measure": None,
        }
    run_dir = cfg.out_dir / "runs" / spec.run_id
    out = run_dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    request = {
        "tool": env.tool,
        "usecase": cfg.usecase,
        "config": spec.config,
        "out_dir": str(out),
        "result_path": str(run_dir / "result.json"),
        "status_path": str(run_dir / "status.json"),
        "tracking_uri": cfg.tracking_uri,
        # A run measured side by side: adapters skip demonstrations beside the pipeline.
        "options": {
            "benchmark": "true",
            **((cfg.meta.get("tool_options") or {}).get(env.tool) or {}),
            **variant_options(spec.tool),  # airflow@celery: the row's own way to run
        },
        "spawned_at": 0.0,
    }
    request_path = run_dir / "request.json"
    request["spawned_at"] = time.time()
    request_path.write_text(json.dumps(request, indent=2))
    status_path = run_dir / "status.json"
    load_before = os.getloadavg()[0]
    outcome = run_child(
        ["mlopsbench.bench.worker", str(request_path)],
        python=python,
        cwd=out,
        env=child_env(cfg, run_dir, tmp_dir),
        log_path=run_dir / "worker.log",
        timeout_s=cfg.timeout_s,
        on_poll=(lambda t: on_poll(current_stage(cfg.usecase, out, status_path), t))
        if on_poll
        else None,
    )
    ended_at = time.time()
    payload = _read_payload(run_dir / "result.json")
    error = None
    if outcome.timed_out:
        error = f"timed out after {cfg.timeout_s:.0f} s"
    elif payload is None:
        error = f"worker exited {outcome.returncode} without a result: {log_reason(run_dir / 'worker.log')}"
    status = "failed" if error else payload.get("status", "failed")  # type: ignore[union-attr]
    return {
        **base,
        "status": status,
        "error": error or (payload or {}).get("error"),
        "result": {
            k: v
            for k, v in (payload or {}).items()
            if k not in ("evidence", "evidence_error", "worker", "deprecations")
        }
        or None,
        "evidence": (payload or {}).get("evidence"),
        "evidence_error": (payload or {}).get("evidence_error"),
        "deprecations": (payload or {}).get("deprecations") or [],
        "measure": _measure_row(payload, outcome, error, ended_at),
        "load_avg": [load_before, os.getloadavg()[0]],
        "run_dir": str(run_dir),
        "log": str(run_dir / "worker.log"),
    }


def _read_payload(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def meta_row(cfg: CompareConfig) -> dict[str, Any]:
    from mlopsbench.bench.environment import machine_info
    from mlopsbench.bench.instrumentation import count_all
    from mlopsbench.toolkit.capabilities import load_catalogue
    from mlopsbench.toolkit.envs import EnvSpec
    from mlopsbench.toolkit.registry import get_tool

    bases = sorted({EnvSpec.parse(t).tool for t in cfg.tools} | {"plain"})
    counts = count_all(bases, cfg.usecase)
    return {
        "kind": "meta",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": cfg.command,
        "usecase": cfg.usecase,
        "tools": list(cfg.tools),
        "models": list(cfg.models),
        "repeats": cfg.repeats,
        "config": cfg.config,
        "threads": cfg.threads,
        "tolerance": cfg.tolerance,
        "timeout_s": cfg.timeout_s,
        "profile": cfg.profile,
        "weights_file": str(cfg.weights_file) if cfg.weights_file else None,
        **cfg.meta,  # what the caller records beside (the report's selected weight profile)
        "environment": machine_info(),
        "instrumentation": {t: c.to_dict() for t, c in counts.items()},
        "tools_declared": {t: get_tool(t).facts() for t in bases},
        # Which test exercises which flexibility/interoperability item on which tool, as this
        # version of mlopsbench has them: the report's grids are of the code that ran.
        "capabilities": load_catalogue(),
    }


def default_compare_dir() -> Path:
    """``runs/compare-<timestamp>[-n]``: a name no folder has yet (nothing is created)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = Path("runs") / f"compare-{stamp}", 1
    while out.exists():
        n += 1
        out = Path("runs") / f"compare-{stamp}-{n}"
    return out


def new_compare_dir(out: Path | None) -> Path:
    """Create ``out`` (must be new or empty), else ``runs/compare-<timestamp>``.

    Called once the whole compare configuration is valid: a rejected option leaves no folder.
    """
    out = default_compare_dir() if out is None else out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} exists and is not empty; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlopsbenchError(f"cannot create output folder {out}: {exc.strerror}") from None
    return out.resolve()


class Progress:
    """The rich progress display: one line per planned run, with its current stage."""

    def __init__(self, specs: list[RunSpec], enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar = RichProgress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description:<28}"),
            TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=False,
        )
        self._tasks = {
            s.run_id: self._bar.add_task(s.run_id, total=1, start=False, stage="[dim]queued[/]")
            for s in specs
        }

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def start(self, run_id: str) -> None:
        self._bar.start_task(self._tasks[run_id])

    def stage(self, run_id: str, label: str) -> None:
        self._bar.update(self._tasks[run_id], stage=f"[cyan]{label}[/]")

    def finish(self, run_id: str, row: dict[str, Any]) -> None:
        status = row["status"]
        wall = (row.get("measure") or {}).get("wall_s")
        text = {"ok": "[green]✓ ok[/]", "gate_failed": "[yellow]✓ gate failed[/]"}.get(
            status, f"[red]✗ {status}[/]"
        )
        if wall is not None:
            text += f" {wall:.1f}s"
        self._bar.update(self._tasks[run_id], stage=text, completed=1)
        self._bar.stop_task(self._tasks[run_id])


def _stage_updater(progress: Progress, run_id: str) -> Callable[[str, float], None]:
    def update(label: str, _elapsed: float) -> None:
        progress.stage(run_id, label)

    return update


def run_compare(cfg: CompareConfig, show_progress: bool = True) -> CompareOutcome:
    """Run the plan and append every row as it finishes; Ctrl-C ends it with the rows so far.

    The caller writes the report from ``results.jsonl`` (also after an interruption).
    """
    out = cfg.out_dir
    results = out / rs.RESULTS_FILE
    tmp_dir = out / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    outcome = CompareOutcome(out, results)
    rs.append_row(results, meta_row(cfg))
    specs = plan_runs(cfg)
    try:
        with Progress(specs, show_progress) as progress:
            for spec in specs:
                progress.start(spec.run_id)
                row = run_row(spec, cfg, tmp_dir, _stage_updater(progress, spec.run_id))
                rs.append_row(results, row)
                outcome.rows.append(row)
                progress.finish(spec.run_id, row)
        _extra_measurements(cfg, results, outcome)
        rs.append_row(results, {"kind": "end", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return outcome


def _extra_measurements(cfg: CompareConfig, results: Path, outcome: CompareOutcome) -> None:
    from mlopsbench.bench.install import core_row, environment_rows, measure_installs

    rows = [core_row(), *environment_rows(cfg.tools)]
    if cfg.measure_install:
        rows += measure_installs(cfg.tools, cfg.out_dir / "install")
    for row in rows:
        rs.append_row(results, row)
        outcome.rows.append(row)
    if cfg.measure_servers:
        from mlopsbench.bench.servers import measure_servers

        for row in measure_servers(cfg.tools, cfg.out_dir / "servers"):
            rs.append_row(results, row)
            outcome.rows.append(row)
