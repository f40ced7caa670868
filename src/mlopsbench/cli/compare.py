"""``mlopsbench compare`` (every tool on the same work, then the report) and ``report``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlopsbench.cli.output import console, error, friendly_errors, warning
from mlopsbench.errors import ConfigError

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


def register(app: typer.Typer) -> None:
    app.command("compare")(friendly_errors(compare))
    app.command("report")(friendly_errors(report))


def compare(
    usecase: Annotated[str, typer.Argument(help="digits, sentiment or sweep.")] = "digits",
    tools: Annotated[
        str | None,
        typer.Option(
            "--tools",
            help="Comma-separated tools, or all (the default); TOOL==VERSION adds another version of a "
            "tool, in its own environment (e.g. mlflow,mlflow==3.5.0); TOOL@VARIANT another way to "
            "run it, side by side (airflow,airflow@local,airflow@celery).",
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated values of the use case's model setting."),
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            help="Sweep: comma-separated parallel trials, one row each (default 1,2).",
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Runs per tool and model (median and spread).")] = 1,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (use case default).")] = None,
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
        bool,
        typer.Option(
            help="Also build each tool's environment again from the registry, cold and warm "
            "pip cache (needs the registry)."
        ),
    ] = False,
    measure_servers: Annotated[
        bool, typer.Option(help="Also time each startable tool server until healthy.")
    ] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow tracking URI every tool also logs to.",
        ),
    ] = None,
    airflow_executor: Annotated[
        str,
        typer.Option(
            "--airflow-executor",
            help="How the Airflow rows run: dag-test (dag.test(), no service), local "
            "(LocalExecutor) or celery (2 Celery workers, Redis); the last two on a local "
            "deployment with PostgreSQL, the DAG triggered over the REST API.",
        ),
    ] = "dag-test",
) -> None:
    """Run the same use case on every tool in its own process and write the evaluation report."""
    from mlopsbench.bench.compare import (
        CompareConfig,
        default_compare_dir,
        new_compare_dir,
        run_compare,
    )
    from mlopsbench.bench.configs import absolutize_paths, apply_overrides, field_types
    from mlopsbench.report.matrix import load_matrix, resolve_profiles
    from mlopsbench.toolkit.envs import row_label
    from mlopsbench.toolkit.registry import tool_names
    from mlopsbench.usecases.registry import get_usecase

    case = get_usecase(usecase)
    chosen = tools.split(",") if tools and tools.strip() != "all" else list(tool_names())
    tool_list = tuple(dict.fromkeys(row_label(t) for t in chosen if t.strip()))
    model_list: tuple[Any, ...] = tuple(
        dict.fromkeys(m.strip() for m in (models or "").split(",") if m.strip())
    )
    shortcuts = {
        "--epochs": ("epochs", epochs),
        "--seed": ("seed", seed),
        "--smoke": ("smoke", smoke or None),
        "--model-path": ("model_path", model_path),
        "--sample": ("sample_size", sample),
        "--models": ("model", model_list or None),
    }
    values = _apply_shortcuts(case, shortcuts)
    values = absolutize_paths(apply_overrides(values, set_ or [], field_types(case.name)))
    if case.run_axis == "workers":
        model_list = _worker_counts(workers)
    elif workers is not None:
        raise ConfigError(f"--workers does not apply to the {case.name} use case")
    axis = case.run_axis
    for model in model_list or (None,):  # every planned config fails before any run starts
        case.config({**values, axis: model} if model else values)
    selected, _ = resolve_profiles(load_matrix(), weights, profile)
    cfg = CompareConfig(
        usecase=case.name,
        tools=tool_list,
        models=model_list,
        repeats=repeats,
        config=values,
        out_dir=out or default_compare_dir(),  # created below, once everything is valid
        threads=threads,
        timeout_s=timeout,
        tolerance=tolerance,
        tracking_uri=tracking_uri,
        profile=profile,
        weights_file=weights,
        measure_install=measure_install,
        measure_servers=measure_servers,
        command="mlopsbench " + " ".join(sys.argv[1:]),
        meta={
            "selected_profile": selected.to_meta(),
            **_tool_options(airflow_executor),
        },
    )
    # Before the folder: a failure here writes nothing.
    prepare_environments(tool_list, tracking=bool(tracking_uri))
    cfg = dataclasses.replace(cfg, out_dir=new_compare_dir(cfg.out_dir))
    outcome = run_compare(cfg, show_progress=sys.stderr.isatty())
    paths = _write_report(cfg.out_dir, weights, profile)
    print_compare(outcome.rows, paths)
    if outcome.interrupted:
        warning("interrupted: the report holds the runs that finished")
        raise typer.Exit(130)
    failed = [r["id"] for r in outcome.rows if r.get("kind") == "run" and r["status"] == "failed"]
    if failed:  # recorded in the report; the exit code tells scripts and CI
        error(f"{len(failed)} run(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)


def _worker_counts(text: str | None) -> tuple[int, ...]:
    """``--workers 1,2`` -> (1, 2): one row per parallelism."""
    items = [part.strip() for part in (text or "1,2").split(",") if part.strip()]
    try:
        counts = tuple(dict.fromkeys(int(item) for item in items))
    except ValueError:
        raise ConfigError(f"--workers expects comma-separated integers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--workers expects integers >= 1, got {text!r}")
    return counts


def prepare_environments(labels: tuple[str, ...], tracking: bool) -> None:
    """Create the tool environments the runs need, with progress. A tool whose environment
    cannot be built is named in one warning line and becomes a failure row; the others run."""
    from mlopsbench.cli.envs import progress_bar
    from mlopsbench.errors import MlopsbenchError
    from mlopsbench.toolkit.envs import (
        TRACKING_TOOL,
        EnvSpec,
        env_labels,
        integration_env,
        python_for,
    )

    for label in env_labels(labels):
        try:
            with progress_bar() as show:
                python_for(EnvSpec.parse(label), create=True, progress=show)
        except MlopsbenchError as exc:
            warning(str(exc))
    if tracking:  # every tool logs to MLflow too: its client comes from MLflow's environment
        try:
            with progress_bar() as show:
                integration_env(TRACKING_TOOL, "", create=True, progress=show)
        except MlopsbenchError as exc:
            warning(str(exc))


def _apply_shortcuts(case: Any, shortcuts: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The use case's default config with the options given; an option for a setting this use
    case does not have is a one-line error."""
    from mlopsbench.bench.configs import base_config

    names = {spec.name for spec in case.params()}
    chosen = {}
    for option, (setting, value) in shortcuts.items():
        if value is None:
            continue
        if setting not in names:
            raise ConfigError(f"{option} does not apply to the {case.name} use case")
        if setting != "model":  # one run per model: set in the plan, not in the base config
            chosen[setting] = value
    return base_config(case.name, **chosen)


def _write_report(out: Path, weights: Path | None, profile: str | None) -> dict[str, Path]:
    from mlopsbench.report.build import build_report

    return build_report(out, weights_file=weights, profile=profile)


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

    rows = read_rows(results_path(directory))  # warns (one line) about damaged lines
    paths = build_report(directory, weights_file=weights, profile=profile, rows=rows)
    print_compare([r for r in rows if r.get("kind") == "run"], paths)


def print_compare(rows: list[dict[str, Any]], paths: dict[str, Path]) -> None:
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
        if tool == "plain":
            overhead = "baseline"
        elif s.overhead_s is not None:
            overhead = f"{s.overhead_s:+.1f}s ({s.overhead_pct:+.0f}%)"
        else:
            overhead = "-"
        table.add_row(
            tool,
            model,
            status,
            _number(s.accuracy.median, ".4f"),
            _number(s.wall.median, ".1f"),
            overhead,
            _number(s.cpu.median, ".1f"),
            _number(s.peak_rss.median, ".0f"),
            f"{s.evidence_score}/7" if s.evidence_score is not None else "n/a",
        )
    console.print(table)
    for name in ("html", "markdown", "results"):
        if name in paths:
            console.print(f"{name:>8}: {paths[name]}", highlight=False, soft_wrap=True)


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _tool_options(airflow_executor: str) -> dict[str, Any]:
    """``RunRequest.options`` per tool (in the meta row as ``tool_options``): the Airflow
    executor, checked here so that a typo fails before any run."""
    executor = airflow_executor.strip().lower()
    if executor not in ("dag-test", "local", "celery"):
        raise ConfigError(
            f"--airflow-executor must be one of dag-test, local, celery, got {airflow_executor!r}"
        )
    return {"tool_options": {"airflow": {"executor": executor}}} if executor != "dag-test" else {}
