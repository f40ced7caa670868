"""``results.jsonl``: the compare run's record, one JSON object per line, appended as runs finish.

Each line is written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a
Ctrl-C or a crash leaves only complete lines for the runs that finished. Readers skip a torn
last line instead of failing. Row kinds:

- ``meta``: the compare configuration, environment and instrumentation counts (written first);
- ``run``: one tool x model x repeat (status, measured timings, the RunResult, its evidence);
- ``install`` / ``server``: optional footprint and time-to-healthy measurements;
- ``end``: written last; its absence means the compare was interrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import DataError

RESULTS_FILE = "results.jsonl"
CORE_STAGES = ("data", "train", "model", "evaluate")


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def append_row(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one row as one line, atomically (single write, O_APPEND, fsync)."""
    line = (json.dumps(row, default=_default, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # never seen on a local file system, but do not hide it
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


class UnreadableRowsWarning(UserWarning):
    """Lines of a results file that are not the torn last line of an interrupted run."""


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a results file.

    A last line that does not parse is what a crash or Ctrl-C mid-write leaves: it is skipped
    quietly. Any *other* unreadable line means the file was damaged or edited: those are
    skipped too, but an ``UnreadableRowsWarning`` names their line numbers, so no row is lost
    silently.
    """
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise DataError(f"no results file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    bad: list[int] = []
    for index, (number, line) in enumerate(numbered):
        row = _parse(line)
        if row is not None:
            yield row
        elif index < len(numbered) - 1:  # the torn last line is expected after a crash
            bad.append(number)
    if bad:
        import warnings

        lines = ", ".join(map(str, bad[:20])) + (" …" if len(bad) > 20 else "")
        warnings.warn(
            UnreadableRowsWarning(f"{path}: skipped {len(bad)} unreadable line(s): {lines}"),
            stacklevel=2,
        )


def _parse(line: str) -> dict[str, Any] | None:
    """One results row, or None when the line is not a JSON object with a ``kind``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "kind" in row else None


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    rows = list(iter_rows(path))
    if not rows:
        raise DataError(f"{path} holds no result rows")
    return rows


def results_path(directory: str | Path) -> Path:
    """Accept a compare folder or the results.jsonl inside it."""
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise DataError(f"no {RESULTS_FILE} in {directory}")
    return path
