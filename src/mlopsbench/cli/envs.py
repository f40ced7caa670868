"""``mlopsbench env list|create|remove|lock``, and running a tool command in the tool's
environment.

Every tool lives in an environment of its own, layered on the core one (see
``mlopsbench.toolkit.envs``). A command that needs a tool this interpreter cannot import runs
itself again, unchanged, with the tool environment's interpreter — creating that environment
first, with a progress bar, when it does not exist yet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from mlopsbench.cli.output import console, err_console, friendly_errors

app = typer.Typer(
    help="Manage the per-tool environments (each tool's packages, layered on the core).",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    for name, command in (
        ("list", list_envs),
        ("create", create),
        ("remove", remove),
        ("lock", lock),
        ("python", python),
    ):
        app.command(name)(friendly_errors(command))
    root.add_typer(app, name="env")


ToolsArg = Annotated[
    list[str] | None,
    typer.Argument(help="TOOL or TOOL==VERSION (e.g. mlflow==3.5.0); default: every tool."),
]


def list_envs() -> None:
    """The tool environments: where, which versions, size, how long the install took."""
    from rich.table import Table

    from mlopsbench.toolkit import envs

    table = Table("environment", "tool", "state", "distributions", "MB", "install s", "path")
    for path, record in envs.list_envs():
        if record is None:
            table.add_row(path.name, "?", "[red]incomplete[/]", "-", "-", "-", str(path))
            continue
        version = _version_of(record)
        table.add_row(
            path.name,
            f"{record.tool} {version}",
            "[green]ready[/]",
            str(record.distributions),
            f"{record.size_mb:.0f}",
            f"{record.install_s:.0f}",
            str(path),
        )
    console.print(table)
    console.print(f"root: {envs.envs_root()} (set MLOPSBENCH_ENVS to move it)", highlight=False)


def create(
    tools: ToolsArg = None,
    force: Annotated[bool, typer.Option(help="Rebuild environments that exist.")] = False,
) -> None:
    """Create the environments of the given tools (default: every tool that has a lock)."""
    from mlopsbench.toolkit import envs

    for spec in _specs(tools):
        if not force and envs.read_record(envs.env_path(spec)) is not None:
            console.print(f"{spec.label}: ready at {envs.env_path(spec)}", highlight=False)
            continue
        with progress_bar() as show:
            path = envs.create_env(spec, progress=show)
        record = envs.read_record(path)
        assert record is not None
        console.print(
            f"{spec.label}: {record.distributions} distributions, {record.size_mb:.0f} MB, "
            f"{record.install_s:.0f} s → {path}",
            highlight=False,
        )


def remove(tools: Annotated[list[str], typer.Argument(help="TOOL or TOOL==VERSION.")]) -> None:
    """Delete tool environments (they are rebuilt on next use)."""
    from mlopsbench.toolkit import envs

    for spec in _specs(tools):
        gone = envs.remove_env(spec)
        console.print(f"{spec.label}: {'removed' if gone else 'no environment'}", highlight=False)


def lock(
    tool: Annotated[str, typer.Argument(help="TOOL or TOOL==VERSION to pin in its lock.")],
) -> None:
    """Re-resolve a tool's own packages against the core and rewrite its requirements.lock."""
    from mlopsbench.toolkit import envs

    spec = envs.EnvSpec.parse(tool)
    with progress_bar() as show:
        path = envs.lock_tool(spec, progress=show)
    console.print(f"wrote {path}", highlight=False)


def python(
    tool: Annotated[str, typer.Argument(help="TOOL or TOOL==VERSION.")],
) -> None:
    """Print the interpreter that runs a tool (creating its environment if needed), e.g.
    ``$(mlopsbench env python metaflow) flow.py run``."""
    from mlopsbench.toolkit import envs

    with progress_bar() as show:
        path = envs.python_for(envs.EnvSpec.parse(tool), create=True, progress=show)
    typer.echo(str(path))


def _specs(labels: list[str] | None) -> list[Any]:
    from mlopsbench.toolkit import envs
    from mlopsbench.toolkit.registry import tools

    if labels:
        return [envs.EnvSpec.parse(label) for label in labels]
    return [envs.EnvSpec(name) for name, tool in tools().items() if tool.distributions]


def _version_of(record: Any) -> str:
    """The tool's own version in an environment (also for a tool this install does not
    declare: then the distribution named like the tool)."""
    from mlopsbench.errors import ConfigError
    from mlopsbench.toolkit.registry import get_tool

    try:
        dists = get_tool(record.tool).distributions
    except ConfigError:
        dists = (record.tool,)
    installed = {name.lower(): version for name, version in record.installed.items()}
    return installed.get(dists[0].split("[")[0].lower(), "?") if dists else "?"


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int | None], None]]:
    """A rich progress bar on stderr fed by ``create_env``'s (message, done, total) calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def show(message: str, done: int, total: int | None) -> None:
            bar.update(task, description=message[:60], completed=done, total=total)

        yield show


def run_in_tool_env(label: str, tracking: bool = False) -> None:
    """Run this command again with the interpreter of ``label``'s environment, unless this
    interpreter can run the tool (or already is that environment's).

    ``tracking``: the run also logs to MLflow, so its processes get MLflow's client from
    MLflow's own environment, after their own packages.
    """
    from mlopsbench.toolkit import envs

    spec = envs.EnvSpec.parse(label)
    if os.environ.get(envs.ACTIVE_ENV) == spec.name:
        return  # we are the environment's interpreter: run here, whatever happens
    if spec.version is None and envs.importable_here(spec.tool):
        return
    with progress_bar() as show:
        python = envs.python_for(spec, create=True, progress=show)
        extra = envs.integration_env(envs.TRACKING_TOOL, spec.tool, create=tracking, progress=show)
    os.environ.update(extra)
    os.environ[envs.ACTIVE_ENV] = spec.name
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, [str(python), "-m", "mlopsbench", *sys.argv[1:]])
