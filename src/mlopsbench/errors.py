"""User-facing errors: one clear line, non-zero exit, never a traceback by default."""

from __future__ import annotations


class MlopsbenchError(Exception):
    """An error whose message is meant for the user as-is (the CLI prints it on one line)."""

    exit_code: int = 1


class DataError(MlopsbenchError):
    """Bad, missing or corrupt input data."""


class ConfigError(MlopsbenchError):
    """An invalid option or configuration value (unknown model, tool, bad weights...)."""

    exit_code = 2


class ToolUnavailableError(MlopsbenchError):
    """A tool's package is not installed or failed to import."""


class GateFailedError(MlopsbenchError):
    """A model scored below its quality gate."""

    exit_code = 3


class ServerError(MlopsbenchError):
    """A server could not be reached, started or stopped."""
