"""``mlopsbench run <use case> --tool T``: one use case on one tool, its record in a run folder.

One command per use case, its options made from the use case's config dataclass (names, types,
defaults, help), so a default changed in the core is the CLI's default too.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mlopsbench.cli.output import console, error, friendly_errors
from mlopsbench.errors import MlopsbenchError

app = typer.Typer(
    help="Run one use case on one tool and write its result record.", no_args_is_help=True
)

SHORT_FLAGS = {"model": "-m"}
COMMON_OPTIONS = ("tool", "out", "tracking_uri")


def _common_parameters() -> list[inspect.Parameter]:
    from mlopsbench.toolkit.registry import tool_names

    options = {
        "tool": (
            Annotated[
                str, typer.Option("--tool", "-t", help=f"One of: {', '.join(tool_names())}.")
            ],
            "plain",
        ),
        "out": (
            Annotated[
                Path,
                typer.Option(
                    "--out", "-o", help="Folder for run outputs (one sub-folder per run)."
                ),
            ],
            Path("runs"),
        ),
        "tracking_uri": (
            Annotated[
                str | None,
                typer.Option(
                    "--tracking-uri",
                    envvar="MLFLOW_TRACKING_URI",
                    help="MLflow tracking URI (tools other than mlflow also log there).",
                ),
            ],
            None,
        ),
    }
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, (kind, default) in options.items()
    ]


def _setting_parameters(usecase: Any) -> list[inspect.Parameter]:
    parameters = []
    for spec in usecase.params():
        flags = [spec.cli_flag, *([SHORT_FLAGS[spec.name]] if spec.name in SHORT_FLAGS else [])]
        kind: Any = spec.kind | None if spec.optional else spec.kind
        annotation = Annotated[kind, typer.Option(*flags, help=spec.description)]
        parameters.append(
            inspect.Parameter(
                spec.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=spec.default,
                annotation=annotation,
            )
        )
    return parameters


def usecase_command(usecase: Any) -> Callable[..., None]:
    """The ``run <use case>`` command: its options are the use case's settings."""

    def command(**values: Any) -> None:
        common = {name: values.pop(name) for name in COMMON_OPTIONS}
        cfg = usecase.config(values)
        run_and_report(usecase.name, common["tool"], cfg, common["out"], common["tracking_uri"])

    parameters = [*_common_parameters(), *_setting_parameters(usecase)]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = f"{usecase.title}."
    command.__name__ = f"run_{usecase.name}"
    return friendly_errors(command)


def _register() -> None:
    from mlopsbench.usecases.registry import every_usecase

    for usecase in every_usecase():
        app.command(usecase.name)(usecase_command(usecase))


_register()


# --------------------------------------------------------------------------------------------
# running and reporting one run
# --------------------------------------------------------------------------------------------


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


def run_and_report(usecase: str, tool: str, cfg: Any, out: Path, tracking_uri: str | None) -> None:
    from mlopsbench.cli.envs import run_in_tool_env
    from mlopsbench.result import RunRequest
    from mlopsbench.toolkit.envs import EnvSpec
    from mlopsbench.toolkit.registry import get_tool, load_runner
    from mlopsbench.usecases.registry import get_usecase

    spec = EnvSpec.parse(tool)
    get_usecase(usecase).check_inputs(cfg)  # before the run folder or an environment exists
    # Continues only where this interpreter can run the tool (else: runs again in its env).
    run_in_tool_env(spec.label, tracking=bool(tracking_uri))
    name = get_tool(spec.tool).name
    runner = load_runner(name, usecase)
    created_from = _first_missing(out)  # the folders this run creates, to undo on bad input
    run_dir = new_run_dir(out, name, usecase)
    request = RunRequest(
        usecase=usecase,
        config=cfg,
        out_dir=run_dir,
        tracking_uri=tracking_uri,
        show_progress=sys.stderr.isatty(),
    )
    with (
        console.status(f"running {usecase} on {name}…", spinner="dots")
        if not request.show_progress
        else contextlib.nullcontext()
    ):
        try:
            result = runner(request)
        except BaseException:
            # Bad input found before any output: leave no empty folder behind.
            _remove_empty_chain(run_dir, stop_after=created_from or run_dir)
            raise
    result_path = result.write(run_dir / "result.json")
    print_result(result, result_path)
    if result.status != "ok":
        error(result.error or result.status)
        raise typer.Exit(3 if result.status == "gate_failed" else 1)


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None if it exists)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_empty_chain(folder: Path, stop_after: Path) -> None:
    """Remove ``folder`` and its parents up to ``stop_after`` while each one is empty."""
    for candidate in (folder, *folder.parents):
        try:
            candidate.rmdir()  # fails, and keeps everything, when the run wrote anything
        except OSError:
            return
        if candidate == stop_after:
            return


def print_result(result: Any, path: Path) -> None:
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
        if isinstance(value, str | int | float):
            table.add_row(key, str(value))
    table.add_row("record", str(path))
    console.print(table)
