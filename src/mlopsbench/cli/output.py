"""The CLI's one error formatter and its consoles.

User errors (``MlopsbenchError``) print as one red line and exit with their code; warnings print
as one yellow line; Ctrl-C prints one line and exits 130. ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from mlopsbench.errors import MlopsbenchError

console = Console()
err_console = Console(stderr=True)
state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def warning(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    """``warnings.showwarning`` for the CLI: one line, no source path."""
    warning(str(message))


def friendly_errors(func: F) -> F:
    """Turn MlopsbenchError (and Ctrl-C) into one line and an exit code, unless --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MlopsbenchError as exc:
            if state["debug"]:
                raise
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
