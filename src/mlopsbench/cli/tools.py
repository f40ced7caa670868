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
    """List the tools: where each one runs (this environment or its own), version, what a
    run does."""
    from rich.table import Table

    from mlopsbench.toolkit import envs
    from mlopsbench.toolkit.registry import tools

    table = Table("tool", "runs in", "version", "what it runs")
    for name, tool in tools().items():
        where, version = _where(name, tool, envs)
        table.add_row(name, where, version, tool.description)
    console.print(table)


def _where(name: str, tool: Any, envs: Any) -> tuple[str, str]:
    """Where the tool runs and its version: this interpreter, its environment, or nowhere yet."""
    from importlib import metadata

    first = tool.distributions[0].split("[", 1)[0] if tool.distributions else None
    if envs.importable_here(name):
        try:
            version = metadata.version(first) if first else "-"
        except metadata.PackageNotFoundError:
            version = "-"
        return "[green]this environment[/]", version
    record = envs.read_record(envs.env_path(envs.EnvSpec(name)))
    if record is None:
        locked = envs.locked_version(name) if first else None
        return "[yellow]its environment (not created yet)[/]", locked or "-"
    installed = {k.lower(): v for k, v in record.installed.items()}
    return "[green]its environment[/]", installed.get(str(first).lower(), "?")


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
