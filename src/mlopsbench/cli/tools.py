"""``mlopsbench tools`` and the commands each tool declares (``server``, ``serve``, its group).

A tool's ``commands`` module may define ``server`` (mounted as ``mlopsbench server <tool>``),
``serve`` (``mlopsbench serve <tool>``) and ``app``, a typer group mounted as
``mlopsbench <tool> ...``. Each is wrapped in the CLI's one error formatter here.
"""

from __future__ import annotations

from typing import Any

import typer

from mlopsbench.cli.output import console, friendly_errors


def register(app: typer.Typer) -> None:
    app.command("tools")(friendly_errors(list_tools))


def list_tools() -> None:
    """List the tools: installed or not, version, what a run does."""
    from importlib import metadata

    from rich.table import Table

    from mlopsbench.toolkit.registry import missing_requirements, tools

    table = Table("tool", "available", "version", "what it runs")
    for name, tool in tools().items():
        missing = missing_requirements(name)
        versions = []
        for dist in tool.distributions[:1]:
            try:
                versions.append(metadata.version(dist))
            except metadata.PackageNotFoundError:
                versions.append("-")
        status = "[green]yes[/]" if not missing else f"[red]no[/] (missing {', '.join(missing)})"
        table.add_row(name, status, ", ".join(versions) or "-", tool.description)
    console.print(table)


def register_tool_commands(app: typer.Typer) -> None:
    """Mount every declared tool's commands (light modules: the tool itself is imported only
    when a command runs, in the tool's environment); a tool whose commands cannot load adds
    none."""
    from mlopsbench.errors import ToolUnavailableError
    from mlopsbench.toolkit.registry import tools

    server = typer.Typer(
        help="Start a tool's server on 127.0.0.1 (Ctrl-C or SIGTERM stops all of it).",
        no_args_is_help=True,
    )
    serve = typer.Typer(help="Serve a registered model over REST.", no_args_is_help=True)
    for name, tool in tools().items():
        try:
            module = tool.import_commands()
        except ToolUnavailableError:
            continue
        if module is None:
            continue
        _mount(server, name, getattr(module, "server", None))
        _mount(serve, name, getattr(module, "serve", None))
        group = getattr(module, "app", None)
        if isinstance(group, typer.Typer):
            for command in group.registered_commands:  # the same one-line errors everywhere
                command.callback = friendly_errors(in_tool_env(name, command.callback))
            app.add_typer(group, name=name)
    app.add_typer(server, name="server")
    app.add_typer(serve, name="serve")


def _mount(group: typer.Typer, name: str, command: Any) -> None:
    if callable(command):
        group.command(name)(friendly_errors(in_tool_env(name, command)))


def in_tool_env(tool: str, command: Any) -> Any:
    """The command, run in the tool's environment (created on first use) when this
    interpreter cannot import the tool."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlopsbench.cli.envs import run_in_tool_env

        run_in_tool_env(tool)
        return command(*args, **kwargs)

    return wrapper
