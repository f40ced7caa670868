"""Reading the telling line out of a log file or an error message."""

from __future__ import annotations

import re
from pathlib import Path

_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")


def last_line(text: object, limit: int = 300) -> str:
    """The last non-blank line of ``text`` (an exception, a stderr dump), stripped."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def log_reason(path: Path, limit: int = 300) -> str:
    """The most telling line of a log: the last exception line, else the last line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (errors or lines or [""])[-1][:limit]


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception as one line: its type and its first line of text."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:limit]
