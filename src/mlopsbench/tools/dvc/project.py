"""A DVC project in the run folder, set up the way a DVC user sets one up, and the DVC CLI.

``create_project`` makes the run folder a git repository (local identity when the user has
none) and a DVC project (``dvc init``; no analytics; DVC's site cache inside ``.dvc/tmp``
instead of ``/var/tmp/dvc``), copies the use case's ``dvc.yaml`` and stage scripts in, writes
``params.yaml`` from the core config, copies the local inputs the config names (``*_path``
settings) into ``inputs/`` and tracks them with ``dvc add inputs``, and commits all of that:
``dvc exp run`` and DVCLive need a commit to start from. ``run_dvc`` runs one DVC command
(``python -m dvc ...`` of this environment) with the stages' ``python`` on ``PATH``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mlopsbench import tracking
from mlopsbench.errors import ConfigError, MlopsbenchError, ToolUnavailableError
from mlopsbench.support.logs import last_line
from mlopsbench.toolkit.options import thread_env
from mlopsbench.tools.dvc.pipeline.write_params import params_yaml
from mlopsbench.usecases.common.params import flat_values

PIPELINE_DIR = Path(__file__).resolve().parent / "pipeline"
STAGES_DIR = "stages"
INPUTS_DIR = "inputs"
LOG_DIR = "logs"
SITE_CACHE = ".dvc/tmp/site-cache"  # DVC's index and hash cache (default: /var/tmp/dvc)
# Written by the harness next to the project, never part of it.
HARNESS_FILES = (f"/{LOG_DIR}/", "/result.json", "/plots/")
DEFAULT_IDENTITY = ("mlopsbench", "mlopsbench@localhost")
INPUTS_README = (
    "Local inputs this run was given (the config's *_path settings), copied here and\n"
    "tracked with `dvc add inputs`; params.yaml points at these copies.\n"
)

_RUNNING = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^(?:Stage )?'([^']+)' didn't change, skipping")
_FAILED = re.compile(r"failed to reproduce '([^']+)'")
_EXCEPTION = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)): (.+)$")


@dataclass(frozen=True)
class Project:
    """A DVC project made for one run."""

    root: Path
    usecase: str
    inputs: dict[str, dict[str, str]]  # setting -> {"given": user's path, "path": in the project}
    commit: str  # the commit holding the pipeline, before any stage ran


@dataclass(frozen=True)
class DvcRun:
    """One DVC command as the user would see it: its exit code, output and time."""

    args: tuple[str, ...]
    returncode: int
    seconds: float
    output: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def ran(self) -> list[str]:
        """Stages DVC ran (``Running stage 'x'``), in order."""
        return [m.group(1) for line in self.output if (m := _RUNNING.match(line.strip()))]

    @property
    def skipped(self) -> list[str]:
        """Stages (and ``.dvc`` files) DVC found unchanged and skipped."""
        return [m.group(1) for line in self.output if (m := _SKIPPED.match(line.strip()))]

    def failure(self) -> str:
        """One line: the stage that failed and its exception, else DVC's last line."""
        stage = next((m.group(1) for line in self.output if (m := _FAILED.search(line))), None)
        errors = [line.strip() for line in self.output if _EXCEPTION.match(line.strip())]
        reason = errors[-1] if errors else last_line("\n".join(self.output)) or "no output"
        where = f" in stage {stage}" if stage else ""
        return f"dvc {' '.join(self.args[:1])} failed{where}: {reason}"[:500]


# ---------------------------------------------------------------------------------------------
# the project
# ---------------------------------------------------------------------------------------------


def pipeline_file(usecase: str) -> Path:
    """``pipeline/<use case>/dvc.yaml``: a new use case needs only its dvc.yaml there."""
    path = PIPELINE_DIR / usecase / "dvc.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no DVC pipeline for the {usecase} use case (pipeline/{usecase}/dvc.yaml)"
        )
    return path


def check_git() -> None:
    """DVC experiments and DVCLive need git: say so in one line before anything is written."""
    if shutil.which("git") is None:
        raise ToolUnavailableError("dvc needs git on PATH (apt-get install -y git)")


def create_project(
    root: Path, usecase: str, cfg: Any, extra_params: Mapping[str, Any] | None = None
) -> Project:
    """The run folder as a committed DVC project holding the use case's pipeline;
    ``extra_params`` go to params.yaml after the config's settings (the sweep's ``trial:``)."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _set_identity(root)
    with quiet_dvc(), _site_cache(root), Repo.init(str(root)) as repo:
        with repo.config.edit("local") as local:
            local.setdefault("core", {})
            local["core"]["analytics"] = "false"
            local["core"]["site_cache_dir"] = str(root / SITE_CACHE)
        _copy_pipeline(root, usecase)
        inputs = copy_inputs(root, cfg)
        values = {**project_values(cfg, inputs), **dict(extra_params or {})}
        (root / "params.yaml").write_text(params_yaml(values))
        with (root / ".gitignore").open("a") as ignore:
            ignore.write("".join(f"{entry}\n" for entry in HARNESS_FILES))
        repo.add(str(root / INPUTS_DIR))
    return Project(root, usecase, inputs, commit_all(root, f"DVC pipeline: {usecase}"))


@contextmanager
def _site_cache(root: Path) -> Iterator[None]:
    """``dvc init`` opens the new repo before its config exists: point DVC's site cache into
    the project for that moment too (then ``core.site_cache_dir`` in config.local holds it)."""
    saved = os.environ.get("DVC_SITE_CACHE_DIR")
    os.environ["DVC_SITE_CACHE_DIR"] = str(root / SITE_CACHE)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("DVC_SITE_CACHE_DIR", None)
        else:
            os.environ["DVC_SITE_CACHE_DIR"] = saved


@contextmanager
def quiet_dvc() -> Iterator[None]:
    """DVC's API logs what its CLI would print ("Initialized DVC repository."): not here."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _copy_pipeline(root: Path, usecase: str) -> None:
    shutil.copy2(pipeline_file(usecase), root / "dvc.yaml")
    stages = root / STAGES_DIR
    stages.mkdir(exist_ok=True)
    for script in sorted((PIPELINE_DIR / STAGES_DIR).glob("*.py")):
        shutil.copy2(script, stages / script.name)


def copy_inputs(root: Path, cfg: Any) -> dict[str, dict[str, str]]:
    """Copy each local path the config names into ``inputs/<name>/``: DVC versions what is
    inside the project (``dvc add``), and params.yaml then points at the copy."""
    folder = root / INPUTS_DIR
    folder.mkdir(exist_ok=True)
    (folder / "README.txt").write_text(INPUTS_README)
    copied: dict[str, dict[str, str]] = {}
    for name, value in flat_values(cfg).items():
        if not name.endswith("_path") or not value:
            continue
        source = Path(value).expanduser().resolve()
        target = folder / name.removesuffix("_path") / (source.name or "input")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        copied[name] = {"given": str(value), "path": target.relative_to(root).as_posix()}
    return copied


def project_values(cfg: Any, inputs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The config's flat values with local paths pointing into the project."""
    return {**flat_values(cfg), **{name: found["path"] for name, found in inputs.items()}}


def commit_all(root: Path, message: str) -> str:
    """``git add -A && git commit``; return the commit's hash."""
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)
    return head(root)


def head(root: Path) -> str:
    return _git(root, "rev-parse", "HEAD").strip()


def _set_identity(root: Path) -> None:
    """Commits need a name and an email: the user's when git has them, else the project's."""
    for key, value in zip(("user.name", "user.email"), DEFAULT_IDENTITY, strict=True):
        if not _git(root, "config", key, check=False).strip():
            _git(root, "config", key, value)
    _git(root, "config", "commit.gpgsign", "false")  # a signing setup would need a passphrase
    _git(root, "config", "tag.gpgsign", "false")


def _git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode:
        reason = last_line(done.stderr or done.stdout) or f"exit {done.returncode}"
        raise MlopsbenchError(f"git {args[0]} failed in {root}: {reason}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# the DVC CLI
# ---------------------------------------------------------------------------------------------


def dvc_env(root: Path, tracking_uri: str | None, options: Mapping[str, str]) -> dict[str, str]:
    """The environment of DVC and its stages: this environment's ``python`` first on PATH (the
    stages run ``python stages/...``), no analytics, MLflow only when the run asks for it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        {
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(root / SITE_CACHE),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the evaluate stage logs where the run says only
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking.absolute_store_uri(tracking_uri)
    return {**env, **thread_env(options)}


def run_dvc(
    root: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    log_name: str,
    show: bool = False,
) -> DvcRun:
    """``dvc <args>`` in the project; its output goes to ``logs/<log_name>.log`` (and to
    stderr when ``show``). Returns whatever happened: a failed run is a result, not an error."""
    log = root / LOG_DIR / f"{log_name}.log"
    log.parent.mkdir(exist_ok=True)
    began = time.perf_counter()
    lines: list[str] = []
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", *args],
            cwd=root,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            _tee(line, sink, sys.stderr if show else None)
            lines.append(line.rstrip("\n"))
        code = proc.wait()
    return DvcRun(tuple(args), code, time.perf_counter() - began, lines, str(log))


def _tee(line: str, sink: TextIO, echo: TextIO | None) -> None:
    sink.write(line)
    if echo is not None:
        echo.write(line)
        echo.flush()
