"""The ``mlopsbench`` command line (typer + rich).

Every command imports its heavy machinery inside its body, so ``mlopsbench --help`` is instant.
User errors (MlopsbenchError) print as one red line and exit non-zero; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

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
server_app = typer.Typer(help="Start a tool's server on 127.0.0.1 (Ctrl-C stops it cleanly).", no_args_is_help=True)
serve_app = typer.Typer(help="Serve a registered model over REST.", no_args_is_help=True)
kfp_app = typer.Typer(help="Compile Kubeflow pipelines or submit them to a cluster.", no_args_is_help=True)
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

run_app = typer.Typer(help="Run one use case on one tool and write its result record.", no_args_is_help=True)
app.add_typer(run_app, name="run")

ToolOpt = Annotated[str, typer.Option("--tool", "-t", help="plain, mlflow, metaflow, airflow or kfp.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for run outputs (one sub-folder per run).")]
TrackingOpt = Annotated[
    str | None,
    typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                 help="MLflow tracking URI (also makes Metaflow/Airflow/KFP log to MLflow)."),
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
    data: Annotated[str, typer.Option(help="sklearn (bundled, offline), hf, torchvision, idx or npz.")] = "sklearn",
    data_path: Annotated[str | None, typer.Option(help="Folder (idx) or file (npz) for local data.")] = None,
    threshold: Annotated[float, typer.Option(help="Quality gate on test accuracy.")] = 0.90,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto.")] = "fp32",
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    out: OutOpt = Path("runs"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Train and evaluate a digit classifier (the paper's MNIST use case)."""
    from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

    cfg = DigitsConfig(
        model=model, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
        threshold=threshold, precision=precision, device=device,
        data=DigitsDataConfig(source=data, path=data_path),
    )
    _run_and_report("digits", tool, cfg, out, tracking_uri)


@run_app.command("sentiment")
@friendly_errors
def run_sentiment(
    tool: ToolOpt = "plain",
    smoke: Annotated[bool, typer.Option(help="Offline: tiny DistilBERT + bundled review fixture.")] = False,
    model_path: Annotated[str | None, typer.Option(help="Local folder with a sequence-classification checkpoint + tokenizer.")] = None,
    data: Annotated[str | None, typer.Option(help="hf, aclimdb, file or fixture (default: fixture with --smoke, else hf).")] = None,
    data_path: Annotated[str | None, typer.Option(help="aclImdb/ folder or a CSV/Parquet/JSONL file with text,label.")] = None,
    sample: Annotated[int, typer.Option(help="Reviews to sample, half of each class.")] = 500,
    max_length: Annotated[int, typer.Option(help="Truncation length (tokens, or characters with --truncation chars).")] = 512,
    truncation: Annotated[str, typer.Option(help="tokens (correct) or chars (the paper's cut).")] = "tokens",
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 32,
    fine_tune: Annotated[bool, typer.Option(help="Fine-tune on a training sample before evaluating.")] = False,
    threshold: Annotated[float, typer.Option(help="Quality gate on accuracy.")] = 0.80,
    seed: SeedOpt = 42,
    out: OutOpt = Path("runs"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Classify IMDB reviews with DistilBERT (the paper's sentiment use case)."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    cfg = SentimentConfig(
        smoke=smoke, model_path=model_path, source=data, data_path=data_path,
        sample_size=sample, max_length=max_length, truncation=truncation,
        batch_size=batch_size, fine_tune=fine_tune, threshold=threshold, seed=seed,
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
    request = RunRequest(usecase=usecase, config=cfg, out_dir=run_dir,
                         tracking_uri=tracking_uri, show_progress=sys.stderr.isatty())
    with console.status(f"running {usecase} on {spec.name}…", spinner="dots") if not request.show_progress else _null():
        result = runner(request)
    result_path = result.write(run_dir / "result.json")
    _print_result(result, result_path)
    if result.status != "ok":
        err_console.print(f"[bold red]error:[/] {result.error or result.status}", highlight=False)
        raise typer.Exit(3 if result.status == "gate_failed" else 1)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_result(result: Any, path: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{result.usecase} · {result.tool} · {result.model}", show_header=False)
    table.add_row("status", f"[green]{result.status}[/]" if result.status == "ok" else f"[red]{result.status}[/]")
    for key in ("accuracy", "macro_f1", "loss"):
        if key in result.metrics:
            table.add_row(key, f"{result.metrics[key]:.4f}")
    if result.gate:
        table.add_row("gate", f"{'passed' if result.gate['passed'] else 'FAILED'} (≥ {result.gate['threshold']})")
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

    dists = {"mlflow": "mlflow", "metaflow": "metaflow", "airflow": "apache-airflow", "kfp": "kfp", "plain": "torch"}
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
# --- end section: compare/report ------------------------------------------------------------

# --- section: mlflow ------------------------------------------------------------------------
# --- end section: mlflow --------------------------------------------------------------------

# --- section: airflow -----------------------------------------------------------------------
# --- end section: airflow -------------------------------------------------------------------

# --- section: kfp ---------------------------------------------------------------------------
# --- end section: kfp -----------------------------------------------------------------------

# --- section: doctor ------------------------------------------------------------------------
# --- end section: doctor --------------------------------------------------------------------
