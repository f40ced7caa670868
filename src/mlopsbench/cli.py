"""The ``mlopsbench`` command line (typer + rich).

Every command imports its heavy machinery inside its body, so ``mlopsbench --help`` is instant.
User errors (MlopsbenchError) print as one red line and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mlopsbench.errors import MlopsbenchError

app = typer.Typer(
    name="mlopsbench",
    help="Run the same ML pipelines on MLflow, Metaflow, Airflow and Kubeflow Pipelines, "
    "and compare the tools side by side.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
server_app = typer.Typer(
    help="Start a tool's server on 127.0.0.1 (Ctrl-C stops it cleanly).", no_args_is_help=True
)
serve_app = typer.Typer(help="Serve a registered model over REST.", no_args_is_help=True)
kfp_app = typer.Typer(
    help="Compile Kubeflow pipelines or submit them to a cluster.", no_args_is_help=True
)
app.add_typer(server_app, name="server")
app.add_typer(serve_app, name="serve")
app.add_typer(kfp_app, name="kfp")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

_state = {"debug": False}


def friendly_errors(func: F) -> F:
    """Turn MlopsbenchError (and Ctrl-C) into one line and an exit code, unless --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlopsbenchError as exc:
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug
    # Quiet, offline-friendly defaults for every tool we may start (users can override).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------

run_app = typer.Typer(
    help="Run one use case on one tool and write its result record.", no_args_is_help=True
)
app.add_typer(run_app, name="run")

ToolOpt = Annotated[
    str, typer.Option("--tool", "-t", help="plain, mlflow, metaflow, airflow or kfp.")
]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Folder for run outputs (one sub-folder per run).")
]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (also makes Metaflow/Airflow/KFP log to MLflow).",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]


@run_app.command("digits")
@friendly_errors
def run_digits(
    tool: ToolOpt = "plain",
    model: Annotated[str, typer.Option("--model", "-m", help="simple, deep or cnn.")] = "cnn",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 5,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    seed: SeedOpt = 42,
    data: Annotated[
        str, typer.Option(help="sklearn (bundled, offline), hf, torchvision, idx or npz.")
    ] = "sklearn",
    data_path: Annotated[
        str | None,
        typer.Option(help="Folder (idx; hf: a save_to_disk folder) or file (npz) for local data."),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Quality gate on test accuracy.")] = 0.90,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto.")] = "fp32",
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    out: OutOpt = Path("runs"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Train and evaluate a digit classifier (the paper's MNIST use case)."""
    from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

    cfg = DigitsConfig(
        model=model,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        threshold=threshold,
        precision=precision,
        device=device,
        data=DigitsDataConfig(source=data, path=data_path),
    )
    _run_and_report("digits", tool, cfg, out, tracking_uri)


@run_app.command("sentiment")
@friendly_errors
def run_sentiment(
    tool: ToolOpt = "plain",
    smoke: Annotated[
        bool, typer.Option(help="Offline: tiny DistilBERT + bundled review fixture.")
    ] = False,
    model_path: Annotated[
        str | None,
        typer.Option(help="Local folder with a sequence-classification checkpoint + tokenizer."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="hf, aclimdb, file or fixture (default: fixture with --smoke, else hf)."),
    ] = None,
    data_path: Annotated[
        str | None,
        typer.Option(help="aclImdb/ folder or a CSV/Parquet/JSONL file with text,label."),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            help="Reviews to sample, half of each class (default 500; --smoke: 100 held-out fixture reviews)."
        ),
    ] = None,
    max_length: Annotated[
        int, typer.Option(help="Truncation length (tokens, or characters with --truncation chars).")
    ] = 512,
    truncation: Annotated[
        str, typer.Option(help="tokens (correct) or chars (the paper's cut).")
    ] = "tokens",
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 8,
    fine_tune: Annotated[
        bool, typer.Option(help="Fine-tune on a training sample before evaluating.")
    ] = False,
    fine_tune_epochs: Annotated[
        int | None, typer.Option(help="Fine-tuning epochs (default 2; --smoke: 10).")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, bf16, int8 or auto (bf16 where the CPU/GPU has it). Low precision only if "
            "it agrees with fp32 on >= 99% of 32 calibration reviews; reviews near the decision "
            "boundary are re-run in fp32."
        ),
    ] = "fp32",
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    threshold: Annotated[float, typer.Option(help="Quality gate on accuracy.")] = 0.80,
    seed: SeedOpt = 42,
    out: OutOpt = Path("runs"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Classify IMDB reviews with DistilBERT (the paper's sentiment use case)."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    cfg = SentimentConfig(
        smoke=smoke,
        model_path=model_path,
        source=data,
        data_path=data_path,
        sample_size=sample,
        max_length=max_length,
        truncation=truncation,
        batch_size=batch_size,
        fine_tune=fine_tune,
        threshold=threshold,
        seed=seed,
        fine_tune_epochs=fine_tune_epochs,
        precision=precision,
        device=device,
    )
    _run_and_report("sentiment", tool, cfg, out, tracking_uri)


def new_run_dir(out: Path, tool: str, usecase: str) -> Path:
    """A fresh folder per run: <out>/<usecase>-<tool>-<timestamp>[-n]."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out / f"{usecase}-{tool}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    try:
        candidate.mkdir(parents=True)
    except OSError as exc:
        raise MlopsbenchError(f"cannot create output folder {candidate}: {exc.strerror}") from None
    return candidate


def _run_and_report(usecase: str, tool: str, cfg: Any, out: Path, tracking_uri: str | None) -> None:
    from mlopsbench.registry import get_spec, load_runner
    from mlopsbench.result import RunRequest

    spec = get_spec(tool)
    runner = load_runner(spec.name)
    run_dir = new_run_dir(out, spec.name, usecase)
    request = RunRequest(
        usecase=usecase,
        config=cfg,
        out_dir=run_dir,
        tracking_uri=tracking_uri,
        show_progress=sys.stderr.isatty(),
    )
    with (
        console.status(f"running {usecase} on {spec.name}…", spinner="dots")
        if not request.show_progress
        else contextlib.nullcontext()
    ):
        try:
            result = runner(request)
        except BaseException:
            _remove_if_empty(run_dir)  # bad input found before any output: leave no empty folder
            raise
    result_path = result.write(run_dir / "result.json")
    _print_result(result, result_path)
    if result.status != "ok":
        err_console.print(
            f"[bold red]error:[/] {result.error or result.status}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(3 if result.status == "gate_failed" else 1)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # fails, and keeps everything, when the run wrote anything


def _print_result(result: Any, path: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{result.usecase} · {result.tool} · {result.model}", show_header=False)
    table.add_row(
        "status",
        f"[green]{result.status}[/]" if result.status == "ok" else f"[red]{result.status}[/]",
    )
    for key in ("accuracy", "macro_f1", "loss"):
        if key in result.metrics:
            table.add_row(key, f"{result.metrics[key]:.4f}")
    if result.gate:
        table.add_row(
            "gate",
            f"{'passed' if result.gate['passed'] else 'FAILED'} (≥ {result.gate['threshold']})",
        )
    table.add_row("wall time", f"{result.wall_time_s:.1f} s")
    table.add_row("stages", ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    table.add_row("peak RSS", f"{result.peak_rss_mb:.0f} MB")
    for key, value in result.tool_info.items():
        if isinstance(value, (str, int, float)):
            table.add_row(key, str(value))
    table.add_row("record", str(path))
    console.print(table)


# --------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------


@app.command("tools")
@friendly_errors
def list_tools() -> None:
    """List the tools and whether each one is installed and importable."""
    from importlib import metadata

    from rich.table import Table

    from mlopsbench.registry import TOOLS, missing_requirements

    dists = {
        "mlflow": "mlflow",
        "metaflow": "metaflow",
        "airflow": "apache-airflow",
        "kfp": "kfp",
        "plain": "torch",
    }
    table = Table("tool", "available", "version", "what it runs")
    for name, spec in TOOLS.items():
        missing = missing_requirements(name)
        try:
            version = metadata.version(dists[name])
        except metadata.PackageNotFoundError:
            version = "-"
        status = "[green]yes[/]" if not missing else f"[red]no[/] (missing {', '.join(missing)})"
        table.add_row(name, status, version, spec.description)
    console.print(table)


# ============================================================================================
# Sections below are owned one each by a part of the project; add commands inside your own.
# ============================================================================================

# --- section: compare/report ----------------------------------------------------------------

WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights", help="TOML file with a [weights] table (six criteria, percent, sum 100)."
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", help="Weight preset: paper, prototyping, enterprise or kubernetes."),
]


@app.command("compare")
@friendly_errors
def compare(
    usecase: Annotated[str, typer.Argument(help="digits or sentiment.")] = "digits",
    tools: Annotated[
        str, typer.Option("--tools", help="Comma-separated tools.")
    ] = "plain,mlflow,metaflow,airflow,kfp",
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated digits models: simple, deep, cnn.")
    ] = "cnn",
    repeats: Annotated[int, typer.Option(help="Runs per tool and model (median and spread).")] = 1,
    epochs: Annotated[
        int | None,
        typer.Option(help="Training epochs (digits; default: the paper's 5)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed, the same for every tool (default: the config's)."),
    ] = None,
    smoke: Annotated[
        bool, typer.Option(help="Sentiment: offline tiny DistilBERT + bundled fixture.")
    ] = False,
    model_path: Annotated[
        str | None, typer.Option(help="Sentiment: local checkpoint folder.")
    ] = None,
    sample: Annotated[int | None, typer.Option(help="Sentiment: reviews to sample.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override KEY=VALUE (repeatable), e.g. --set lr=0.01."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            help="Threads per run (OMP/MKL/OpenBLAS), the same for every tool; 0 = library default."
        ),
    ] = 1,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a run is stopped and recorded as failed.")
    ] = 900.0,
    tolerance: Annotated[
        float, typer.Option(help="Accuracy difference still counted as 'matches plain'.")
    ] = 0.005,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default runs/compare-<timestamp>)."),
    ] = None,
    weights: WeightsOpt = None,
    profile: ProfileOpt = None,
    measure_install: Annotated[
        bool, typer.Option(help="Also install each tool into a fresh uv venv (needs the registry).")
    ] = False,
    measure_servers: Annotated[
        bool, typer.Option(help="Also time each startable tool server until healthy.")
    ] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Run the same use case on every tool in its own process and write the evaluation report."""
    from mlopsbench.bench.compare import CompareConfig, new_compare_dir, run_compare
    from mlopsbench.bench.configs import (
        absolutize_paths,
        apply_overrides,
        base_config,
        build_config,
        check_usecase,
        field_types,
    )
    from mlopsbench.registry import get_spec
    from mlopsbench.report.matrix import load_matrix, resolve_profiles

    usecase = check_usecase(usecase)
    tool_names = tuple(dict.fromkeys(get_spec(t).name for t in tools.split(",") if t.strip()))
    model_names = tuple(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
    if usecase == "digits":
        values = base_config("digits", epochs=epochs, seed=seed)
    else:
        values = base_config(
            "sentiment", smoke=smoke or None, model_path=model_path, sample_size=sample, seed=seed
        )
    values = absolutize_paths(apply_overrides(values, set_ or [], field_types(usecase)))
    for model in model_names if usecase == "digits" else ("",):  # fail before any run starts
        build_config(usecase, {**values, "model": model} if model else values)
    resolve_profiles(load_matrix(), weights, profile)
    if measure_install:
        from mlopsbench.bench.install import find_uv

        find_uv()
    cfg = CompareConfig(
        usecase=usecase,
        tools=tool_names,
        models=model_names,
        repeats=repeats,
        config=values,
        out_dir=new_compare_dir(out),
        threads=threads,
        timeout_s=timeout,
        tolerance=tolerance,
        tracking_uri=tracking_uri,
        profile=profile,
        weights_file=weights,
        measure_install=measure_install,
        measure_servers=measure_servers,
        command="mlopsbench " + " ".join(sys.argv[1:]),
    )
    outcome = run_compare(cfg, show_progress=sys.stderr.isatty())
    _print_compare(outcome.rows, outcome.reports)
    if outcome.interrupted:
        err_console.print("[yellow]interrupted: the report holds the runs that finished[/]")
        raise typer.Exit(130)
    failed = [r["id"] for r in outcome.rows if r.get("kind") == "run" and r["status"] == "failed"]
    if failed:  # recorded in the report; the exit code tells scripts and CI
        err_console.print(f"[bold red]error:[/] {len(failed)} run(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("report")
@friendly_errors
def report(
    directory: Annotated[
        Path, typer.Argument(help="A compare output folder (or its results.jsonl).")
    ],
    weights: WeightsOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Rebuild index.html and report.md from a compare folder's results.jsonl (no re-run)."""
    from mlopsbench.bench.results import read_rows, results_path
    from mlopsbench.report.build import build_report

    paths = build_report(directory, weights_file=weights, profile=profile)
    _print_compare([r for r in read_rows(results_path(directory)) if r.get("kind") == "run"], paths)


def _print_compare(rows: list[dict[str, Any]], paths: dict[str, Path]) -> None:
    from rich.table import Table

    from mlopsbench.report.aggregate import summarize

    summary = summarize(rows)
    table = Table(
        "tool",
        "model",
        "status",
        "accuracy",
        "wall s",
        "overhead",
        "CPU s",
        "peak RSS MB",
        "evidence",
        title="mlopsbench compare",
    )
    for (tool, model), s in summary.stats.items():
        status = (
            "[green]ok[/]"
            if s.completed == s.runs
            else f"[red]{', '.join(sorted(set(s.statuses)))}[/]"
        )
        overhead = (
            "baseline"
            if tool == "plain"
            else (
                f"{s.overhead_s:+.1f}s ({s.overhead_pct:+.0f}%)"
                if s.overhead_s is not None
                else "-"
            )
        )
        table.add_row(
            tool,
            model,
            status,
            f"{s.accuracy.median:.4f}" if s.accuracy.median is not None else "-",
            f"{s.wall.median:.1f}" if s.wall.median is not None else "-",
            overhead,
            f"{s.cpu.median:.1f}" if s.cpu.median is not None else "-",
            f"{s.peak_rss.median:.0f}" if s.peak_rss.median is not None else "-",
            f"{s.evidence_score}/7" if s.evidence_score is not None else "n/a",
        )
    console.print(table)
    for name in ("html", "markdown", "results"):
        if name in paths:
            console.print(f"{name:>8}: {paths[name]}", highlight=False, soft_wrap=True)


# --- end section: compare/report ------------------------------------------------------------

# --- section: mlflow ------------------------------------------------------------------------


@server_app.command("mlflow")
@friendly_errors
def server_mlflow(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(help="sqlite:///…, postgresql://… (default: runs/mlflow-server/mlflow.db)."),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(help="Artifact folder/URI (default: runs/mlflow-server/artifacts)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback only).")] = "127.0.0.1",
) -> None:
    """Run an MLflow tracking server (SQLite + artifact folder) until Ctrl-C."""
    from mlopsbench.tools.mlflow import server

    console.print(f"starting mlflow server on {host}:{port} (first start can take ~15 s)…")
    proc = server.start_tracking_server(port, backend_store_uri, artifacts_destination, host)
    with server.running(proc):
        console.print(f"MLflow UI: [bold]{proc.url}[/]  (runs: --tracking-uri {proc.url})")
        console.print(f"log: {proc.log_path} · Ctrl-C stops the server and all its workers")
        code = server.wait_forever(proc)
    if code:
        raise typer.Exit(1)


@serve_app.command("mlflow")
@friendly_errors
def serve_mlflow(
    model: Annotated[
        str, typer.Option("--model", "-m", help="NAME@ALIAS or NAME/VERSION (digits-cnn@champion).")
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5001,
    tracking_uri: TrackingOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Runs folder: its mlflow/ store is the default.")
    ] = Path("runs"),
) -> None:
    """Serve a registered model over REST (POST /invocations) until Ctrl-C."""
    from mlopsbench import tracking
    from mlopsbench.tools.mlflow import server

    uri = tracking.resolve_tracking_uri(tracking_uri, out / "mlflow")
    tracking.check_tracking_uri(uri)
    version = tracking.check_registered_model(uri, model)
    model_uri = f"models:/{version.name}/{version.version}"
    console.print(f"serving {model} (= {model_uri}) on 127.0.0.1:{port}…")
    proc = server.start_model_server(model_uri, port, uri, log_dir=out / "mlflow-serve")
    with server.running(proc):
        console.print(f"POST {proc.url}/invocations · log: {proc.log_path} · Ctrl-C stops it")
        code = server.wait_forever(proc)
    if code:
        raise typer.Exit(1)


# --- end section: mlflow --------------------------------------------------------------------

# --- section: airflow -----------------------------------------------------------------------


@server_app.command("airflow")
@friendly_errors
def server_airflow(
    port: Annotated[int, typer.Option(help="API/UI port on 127.0.0.1.")] = 8080,
    home: Annotated[
        Path | None, typer.Option(help="AIRFLOW_HOME (SQLite DB, logs); default runs/airflow.")
    ] = None,
    artifact_root: Annotated[
        Path | None, typer.Option(help="Where DAG runs write files; default HOME/artifacts.")
    ] = None,
    parallelism: Annotated[int, typer.Option(min=1, help="Task slots of the LocalExecutor.")] = 2,
) -> None:
    """Airflow 3 api-server, scheduler and dag-processor on 127.0.0.1 with the project's DAGs."""
    from mlopsbench.tools.airflow import server as airflow_server
    from mlopsbench.tools.airflow.common import DAG_IDS

    settings = airflow_server.ServerSettings(
        home=(home or airflow_server.default_home()).resolve(),
        port=port,
        artifact_root=artifact_root.resolve() if artifact_root else None,
        parallelism=parallelism,
    )
    console.print(f"starting Airflow in {settings.home} (db migrate, then 3 processes)…")
    server = airflow_server.start(settings)
    try:
        ready_s = airflow_server.wait_ready(server)
        console.print(
            f"[green]Airflow ready[/] in {ready_s:.0f} s (db migrate {server.migrate_s:.0f} s)"
        )
        console.print(f"  UI/API    {server.url}   login: admin / {server.password}")
        console.print(f"  DAGs      {', '.join(DAG_IDS.values())}")
        console.print(f"  artifacts {settings.artifacts}")
        console.print(f"  logs      {server.log_dir}")
        console.print("Ctrl-C stops all processes.")
        airflow_server.wait_until_exit(server)
    finally:
        console.print("stopping Airflow…")
        airflow_server.stop(server)


# --- end section: airflow -------------------------------------------------------------------

# --- section: kfp ---------------------------------------------------------------------------

KfpUsecaseOpt = Annotated[str, typer.Option("--usecase", "-u", help="digits or sentiment.")]
KfpImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        envvar="MLOPSBENCH_KFP_IMAGE",
        help="Component base image with mlopsbench installed (default mlopsbench:latest).",
    ),
]


@kfp_app.command("compile")
@friendly_errors
def kfp_compile(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the compiled IR YAML files.")
    ] = Path("compiled"),
    usecase: Annotated[
        str, typer.Option("--usecase", "-u", help="digits, sentiment or all.")
    ] = "all",
    image: KfpImageOpt = None,
) -> None:
    """Compile the pipelines to KFP IR YAML (build outputs: regenerate, don't edit)."""
    from mlopsbench.tools.kfp.params import USECASES, KfpSettings, check_usecase
    from mlopsbench.tools.kfp.pipelines import compile_all

    usecases = USECASES if usecase == "all" else (check_usecase(usecase),)
    settings = KfpSettings(image=image) if image else KfpSettings()
    for path in compile_all(out, settings, usecases):
        console.print(f"compiled {path}")


@kfp_app.command("submit")
@friendly_errors
def kfp_submit(
    host: Annotated[
        str, typer.Option(help="KFP API URL, e.g. http://127.0.0.1:8080 (a port-forward).")
    ],
    experiment: Annotated[str, typer.Option(help="KFP experiment to run in.")] = "mlopsbench",
    usecase: KfpUsecaseOpt = "digits",
    package: Annotated[
        Path | None, typer.Option(help="A compiled pipeline YAML (default: compile now).")
    ] = None,
    image: KfpImageOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Run name shown in the KFP UI.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="digits: simple, deep or cnn.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="digits: training epochs.")] = None,
    lr: Annotated[float | None, typer.Option(help="digits: Adam learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Quality gate on accuracy (default: the use case's).")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data source (paths are read inside the cluster's pods).")
    ] = None,
    data_path: Annotated[
        str | None, typer.Option(help="Data file/folder as the pods see it.")
    ] = None,
    smoke: Annotated[
        bool, typer.Option(help="sentiment: tiny offline model + bundled fixture.")
    ] = False,
    sample: Annotated[int | None, typer.Option(help="sentiment: reviews to sample.")] = None,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI reachable from the pods.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the host to answer.")] = 3.0,
) -> None:
    """Compile and submit a pipeline run to a Kubeflow Pipelines cluster."""
    from mlopsbench.tools.kfp.params import KfpSettings, check_usecase, pipeline_arguments
    from mlopsbench.tools.kfp.submit import build_config, submit

    common = {
        "batch_size": batch_size,
        "seed": seed,
        "threshold": threshold,
        "data_path": data_path,
    }
    if check_usecase(usecase) == "digits":
        if smoke or sample is not None:
            raise MlopsbenchError("--smoke and --sample apply to --usecase sentiment only")
        flags = {**common, "model": model, "epochs": epochs, "lr": lr, "data_source": data}
    else:
        if model is not None or epochs is not None or lr is not None:
            raise MlopsbenchError("--model, --epochs and --lr apply to --usecase digits only")
        flags = {**common, "smoke": smoke or None, "sample_size": sample, "source": data}
    cfg = build_config(usecase, **flags)
    arguments = {**pipeline_arguments(usecase, cfg), "mlflow_uri": mlflow_uri or ""}
    settings = KfpSettings(image=image) if image else KfpSettings()
    info = submit(
        host,
        usecase,
        arguments,
        settings=settings,
        experiment=experiment,
        run_name=run_name,
        package=package,
        timeout_s=timeout,
    )
    console.print(f"submitted run {info['run_id']}: {info['url']}")


# --- end section: kfp -----------------------------------------------------------------------

# --- section: doctor ------------------------------------------------------------------------


@app.command("doctor")
@friendly_errors
def doctor(
    out: OutOpt = Path("runs"),
    lock: Annotated[
        Path | None,
        typer.Option(help="Lock file to compare versions with (default: this checkout's)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the checks as JSON instead of a table.")
    ] = False,
) -> None:
    """Check this machine: Python, tool versions vs the lock file, torch CPU/GPU, ports, offline data.

    Exits 0 when nothing blocks `mlopsbench run digits`, 1 otherwise; every problem says what to do.
    """
    import json

    from mlopsbench.doctor import DoctorConfig, exit_code, render, run_checks, to_json

    checks = run_checks(DoctorConfig(lock_path=lock, runs_dir=out))
    if as_json:
        typer.echo(json.dumps(to_json(checks), indent=2))
    else:
        render(checks, console)
    raise typer.Exit(exit_code(checks))


# --- end section: doctor --------------------------------------------------------------------
