"""Read an offline W&B run back with wandb's own reader, ``wandb leet inspect``.

An offline run is one folder, ``<WANDB_DIR>/wandb/offline-run-<time>-<id>/``, whose
``run-<id>.wandb`` file is the run's transaction log: protobuf records (run, config, history,
summary, artifacts, files, exit) that ``wandb sync`` would upload. wandb 0.31 ships no Python
reader of it (the ``wandb.sdk.internal.datastore`` of older releases is gone, and ``wandb.Api``
needs a server), but its CLI decodes the log with wandb-core:

- ``wandb leet inspect --json RUN``: every record, one JSON object a line;
- ``wandb leet inspect --summary --json RUN``: the run's state (``finished``, ``failed``…), exit
  code, config, summary and tags, as one object.

Both are run here with the tool environment's interpreter, offline; nothing parses the log's
bytes by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.support.logs import last_line

READ_TIMEOUT_S = 120.0
# Offline and without error reporting: else wandb-core is told the W&B server to report to.
READER_ENV = {"WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true"}
RUNS_FOLDER = "wandb"  # wandb.init writes <WANDB_DIR>/wandb/<run folder>


@dataclass(frozen=True)
class OfflineRun:
    """One offline run as wandb's reader returns it."""

    file: Path  # run-<id>.wandb
    overview: dict[str, Any]  # `inspect --summary --json`
    records: list[dict[str, Any]]  # `inspect --json`, in log order

    @property
    def run_id(self) -> str:
        return str(self.overview.get("run_id", ""))

    @property
    def state(self) -> str:
        """``finished`` after an exit code 0, ``failed`` after another one, else ``running``."""
        return str(self.overview.get("state", ""))

    @property
    def exit_code(self) -> int | None:
        code = self.overview.get("exit_code")
        return int(code) if isinstance(code, int) else None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.overview.get("config") or {})

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.overview.get("summary") or {})

    @property
    def tags(self) -> list[str]:
        return list(self.overview.get("tags") or [])

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The payloads of every record of one kind (``history``, ``artifact``, ``run``…)."""
        return [r.get(kind) or {} for r in self.records if r.get("type") == kind]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Each committed step's row, as ``run.log`` wrote it (``_step`` included)."""
        return [record.get("item") or {} for record in self.of_type("history")]

    def artifacts(self, kind: str) -> list[dict[str, Any]]:
        """Artifact records of one type, their metadata decoded (the log keeps it as JSON text)."""
        return [
            {**record, "metadata": _decode(record.get("metadata"))}
            for record in self.of_type("artifact")
            if record.get("type") == kind
        ]

    def artifact(self, kind: str) -> dict[str, Any]:
        """The last artifact of one type logged by the run ({} when none)."""
        found = self.artifacts(kind)
        return found[-1] if found else {}

    @property
    def git_commit(self) -> str | None:
        """The commit wandb recorded for the code the run ran from (None outside git)."""
        for record in reversed(self.of_type("run")):
            commit = (record.get("git") or {}).get("commit")
            if commit:
                return str(commit)
        return None

    @property
    def files_dir(self) -> Path:
        """Where the run's media files (``media/images/...``) live."""
        return self.file.parent / "files"


def find_run_folder(root: str | Path, run_id: str | None = None) -> Path | None:
    """The offline run folder under ``root`` (the ``WANDB_DIR`` of the run): the one with
    ``run_id``, else the newest one (a run that failed before returning its id)."""
    folder = Path(root) / RUNS_FOLDER
    pattern = f"*run-*-{run_id}" if run_id else "*run-*-*"
    found = sorted(p for p in folder.glob(pattern) if p.is_dir() and any(p.glob("run-*.wandb")))
    return found[-1] if found else None


def run_file(run_folder: str | Path) -> Path:
    """The transaction log of a run folder, ``run-<id>.wandb``."""
    found = sorted(Path(run_folder).glob("run-*.wandb"))
    if not found:
        raise MlopsbenchError(f"no .wandb file in {run_folder}")
    return found[0]


def read_run(run_folder: str | Path) -> OfflineRun:
    """The run's overview and records, through ``wandb leet inspect``."""
    file = run_file(run_folder)
    return OfflineRun(
        file=file,
        overview=_single_object(_inspect(file, "--summary", "--json"), file),
        records=[json.loads(line) for line in _inspect(file, "--json").splitlines() if line],
    )


def _inspect(file: Path, *options: str) -> str:
    """What ``wandb leet inspect OPTIONS FILE`` prints (one process: side by side, two of them
    are slower than one after the other on a 2-core machine)."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", *options, str(file)]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **READER_ENV},
            timeout=READ_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MlopsbenchError(f"wandb leet inspect timed out on {file}") from None
    if done.returncode != 0:
        reason = last_line(done.stderr) or f"exit code {done.returncode}"
        raise MlopsbenchError(f"wandb leet inspect could not read {file}: {reason}")
    return done.stdout


def _single_object(text: str, file: Path) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise MlopsbenchError(f"wandb leet inspect gave no JSON summary for {file}") from None
    if not isinstance(value, dict):
        raise MlopsbenchError(f"wandb leet inspect gave no JSON summary for {file}")
    return value


def _decode(metadata: Any) -> dict[str, Any]:
    """An artifact record's metadata: JSON text in the log, a dict here."""
    if isinstance(metadata, dict):
        return metadata
    try:
        value = json.loads(metadata) if metadata else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
