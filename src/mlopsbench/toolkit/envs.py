"""One environment per tool, layered on the core environment: installs that do not collide.

The core environment (the virtualenv mlopsbench is installed in: torch, numpy, transformers,
scikit-learn, the harness) is shared. Each tool gets a virtualenv of its own under
:func:`envs_root` holding *only that tool's packages*; a ``.pth`` file puts the core
environment's site-packages after its own on ``sys.path``::

    <core venv>/                        torch, numpy, ... mlopsbench (one copy on disk)
    <core venv>/mlopsbench-envs/
        mlflow/          mlflow + its own dependencies      (from tools/mlflow/requirements.lock)
        airflow/         apache-airflow + ...               (from tools/airflow/requirements.lock)
        mlflow-3.5.0/    another MLflow, resolved against the core's exact versions
        <name>/mlopsbench-env.json   what was installed, when, how long it took, its size

pip in a tool environment sees the core packages as installed, so it never downloads them again
(and never a CUDA torch); every install is constrained to the core's exact versions, so a tool
that needs another numpy fails to resolve with pip's reason instead of shadowing it. Tools whose
packages cannot share one environment (Airflow 3 and Prefect 3 pin different FastAPIs) each get
their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, ToolUnavailableError
from mlopsbench.toolkit.registry import get_tool

ENVS_ENV = "MLOPSBENCH_ENVS"  # where tool environments live (default: inside the core venv)
ACTIVE_ENV = "MLOPSBENCH_TOOL_ENV"  # set inside a tool environment's processes: no re-entry
RECORD_FILE = "mlopsbench-env.json"
LOCK_FILE = "requirements.lock"  # in each tool's folder: its own packages, pinned
CORE_PTH = "_mlopsbench_core.pth"
EXTRA_SITES_ENV = "MLOPSBENCH_EXTRA_SITES"  # other environments a process may also import from
TRACKING_TOOL = "mlflow"  # whose client mlopsbench.tracking needs, for every tool that logs there
INSTALL_TIMEOUT_S = 1800

Progress = Callable[[str, int, int | None], None]  # (message, done, total)


# --------------------------------------------------------------------------------------------
# what an environment is
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvSpec:
    """A tool at its locked versions (``mlflow``) or at another version (``mlflow==3.5.0``)."""

    tool: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> EnvSpec:
        """``TOOL``, ``TOOL==VERSION``; a ``@VARIANT`` suffix (a way to run, not an
        environment) is checked against the tool's declaration and left out."""
        text, _variant = split_variant(text)
        name, sep, version = text.strip().partition("==")
        tool = get_tool(name).name
        if sep and not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version.strip()):
            raise ConfigError(f"{text!r}: expected TOOL or TOOL==VERSION (e.g. mlflow==3.5.0)")
        return cls(tool, version.strip() or None if sep else None)

    @property
    def name(self) -> str:
        """Folder name: ``mlflow`` or ``mlflow-3.5.0``."""
        return self.tool if self.version is None else f"{self.tool}-{self.version}"

    @property
    def label(self) -> str:
        """How rows and messages show it: ``mlflow`` or ``mlflow==3.5.0``."""
        return self.tool if self.version is None else f"{self.tool}=={self.version}"

    @property
    def lock_path(self) -> Path:
        return get_tool(self.tool).folder / LOCK_FILE

    def top_level(self) -> list[str]:
        """The tool's own distributions as pinned for this environment."""
        dists = get_tool(self.tool).distributions
        if self.version is not None:
            return [f"{dists[0]}=={self.version}", *dists[1:]]
        pins = _lock_pins(self.lock_path) if self.lock_path.is_file() else {}
        return [f"{d}=={pins[_norm(d)]}" if _norm(d) in pins else d for d in dists]

    def requirements(self) -> list[str]:
        """What pip installs: the tool's lock, or its distributions at the asked version."""
        if self.version is None:
            return ["-r", str(self.lock_path)]
        first, *rest = get_tool(self.tool).distributions
        return [f"{first}=={self.version}", *rest]


def split_variant(label: str) -> tuple[str, str | None]:
    """``airflow==3.3.2@celery`` -> (``airflow==3.3.2``, ``celery``); an unknown variant is a
    one-line ConfigError naming the tool's variants."""
    text, sep, variant = label.strip().partition("@")
    if not sep:
        return text, None
    tool = get_tool(text.partition("==")[0]).name
    declared = get_tool(tool).variants
    if variant.strip() not in declared:
        known = ", ".join(f"{tool}@{name}" for name in declared) or "none"
        raise ConfigError(f"{label.strip()!r}: {tool} has no variant {variant!r} (known: {known})")
    return text.strip(), variant.strip()


def variant_options(label: str) -> dict[str, str]:
    """The run options a row label's ``@VARIANT`` sets (none without one)."""
    text, variant = split_variant(label)
    if variant is None:
        return {}
    return dict(get_tool(text.partition("==")[0]).variants[variant])


def row_label(text: str) -> str:
    """How a ``compare --tools`` entry names its rows: ``mlflow``, ``mlflow==3.5.0``,
    ``airflow@celery`` (normalised; checked)."""
    spec = EnvSpec.parse(text)
    _, variant = split_variant(text)
    return spec.label if variant is None else f"{spec.label}@{variant}"


def env_labels(labels: Iterable[str]) -> list[str]:
    """The environments behind row labels, once each (``airflow@celery`` runs in ``airflow``)."""
    return list(dict.fromkeys(EnvSpec.parse(label).label for label in labels))


def env_label(label: str) -> str:
    """``airflow==3.3.2@celery`` -> ``airflow==3.3.2``: the environment a row ran in."""
    return label.split("@", 1)[0]


def base_tool(label: str) -> str:
    """``mlflow==3.5.0`` or ``airflow@celery`` -> the tool: its pipeline, paper row, colour."""
    return label.split("@", 1)[0].split("==", 1)[0]


@dataclass
class EnvRecord:
    """What ``mlopsbench-env.json`` says about an environment."""

    tool: str
    version: str | None
    label: str
    created_at: str
    install_s: float
    distributions: int
    size_mb: float
    installed: dict[str, str] = field(default_factory=dict)  # name -> version
    core_site: str = ""
    warm_cache: bool = True


def envs_root() -> Path:
    """``$MLOPSBENCH_ENVS``, else ``<core environment>/mlopsbench-envs``."""
    configured = os.environ.get(ENVS_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    return core_prefix() / "mlopsbench-envs"


def core_prefix() -> Path:
    """The core environment's prefix — also from inside a tool environment, whose own
    ``sys.prefix`` is the tool's: its layering ``.pth`` names the core's site-packages."""
    layer = site_packages(Path(sys.prefix)) / CORE_PTH
    if layer.is_file():
        named = re.search(r"\['([^']+)'", layer.read_text())
        if named:
            return Path(named.group(1)).parents[2]  # <prefix>/lib/pythonX.Y/site-packages
    return Path(sys.prefix)


def env_path(spec: EnvSpec, root: Path | None = None) -> Path:
    return (root or envs_root()) / spec.name


def env_python(path: Path) -> Path:
    return path / "bin" / "python"


def site_packages(prefix: Path) -> Path:
    return (
        prefix
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )


def core_site_packages() -> Path:
    """The core environment's site-packages (where this mlopsbench and torch are installed)."""
    return site_packages(core_prefix())


def read_record(path: Path) -> EnvRecord | None:
    try:
        return EnvRecord(**json.loads((path / RECORD_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None  # no record: never finished, or not ours


def list_envs(root: Path | None = None) -> list[tuple[Path, EnvRecord | None]]:
    base = root or envs_root()
    if not base.is_dir():
        return []
    return [(p, read_record(p)) for p in sorted(base.iterdir()) if p.is_dir()]


# --------------------------------------------------------------------------------------------
# which interpreter runs a tool
# --------------------------------------------------------------------------------------------


def importable_here(tool: str) -> bool:
    """Whether this interpreter can import the tool already (one big environment, or we are
    inside the tool's environment)."""
    from mlopsbench.toolkit.registry import missing_requirements

    return not missing_requirements(tool)


def python_for(spec: EnvSpec, create: bool = False, progress: Progress | None = None) -> Path:
    """The interpreter to run ``spec`` with.

    The current one when it can import the locked tool; else the tool's environment, created
    first when ``create`` (a one-line ToolUnavailableError otherwise, saying how to create it).
    """
    if spec.version is None and importable_here(spec.tool):
        return Path(sys.executable)
    path = env_path(spec)
    if read_record(path) is not None:
        return env_python(path)
    if not create:
        raise ToolUnavailableError(
            f"tool {spec.label!r} has no environment yet; create it with "
            f"`mlopsbench env create {spec.label}` (needs the package registry)"
        )
    return env_python(create_env(spec, progress=progress))


# --------------------------------------------------------------------------------------------
# creating and removing
# --------------------------------------------------------------------------------------------


def core_constraints(path: Path) -> Path:
    """Every distribution of the core environment at its exact version: pip may add packages
    to a tool environment but never another version of a core one."""
    lines = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions(path=[str(core_site_packages())])
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "mlopsbench"
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def create_env(
    spec: EnvSpec,
    root: Path | None = None,
    progress: Progress | None = None,
    pip_cache: Path | None = None,
) -> Path:
    """Build the environment of ``spec`` (replacing any earlier one); return its folder.

    The record file is written last: a folder without it (an interrupted build) counts as
    missing. A failed install leaves nothing behind and raises one line with pip's reason.
    """
    if spec.version is None and not spec.lock_path.is_file():
        raise ConfigError(f"tool {spec.tool!r} has no {LOCK_FILE} in {spec.lock_path.parent}")
    target = env_path(spec, root)
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    try:
        _make_venv(target, spec, progress)
        _layer_on_core(target)
        _pip_install(target, spec, progress, pip_cache)
        _check_imports(target, spec)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    record = _record(target, spec, time.perf_counter() - started, pip_cache is None)
    (target / RECORD_FILE).write_text(json.dumps(asdict(record), indent=2))
    return target


LOCK_HEADER = """# {tool}'s own packages, pinned: what `mlopsbench env create {tool}` installs (--no-deps) on top
# of the core environment (requirements.lock at the repository root). Regenerate with
# `mlopsbench env lock {tool}` (or `{tool}==VERSION` to move the tool to another version).
"""


def _norm(name: str) -> str:
    """A distribution's canonical name, without extras (``zenml[server]`` -> ``zenml``)."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def _lock_pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not name.startswith("#"):
            pins[_norm(name.strip())] = version.strip()
    return pins


def locked_version(tool: str) -> str | None:
    """The version of the tool's first distribution in its lock file."""
    first = _norm(get_tool(tool).distributions[0])
    return _lock_pins(get_tool(tool).folder / LOCK_FILE).get(first)


def lock_tool(spec: EnvSpec, progress: Progress | None = None) -> Path:
    """Resolve the tool (at ``spec.version``, else its locked version) against the core's exact
    versions in a scratch environment, and write what got installed as its lock file."""
    version = spec.version or locked_version(spec.tool)
    resolving = EnvSpec(spec.tool, version)
    with tempfile.TemporaryDirectory(prefix="mlopsbench-lock-") as scratch:
        record = read_record(create_env(resolving, root=Path(scratch), progress=progress))
    assert record is not None
    lines = [
        f"{name}=={record.installed[name]}" for name in sorted(record.installed, key=str.lower)
    ]
    path = spec.lock_path
    path.write_text(LOCK_HEADER.format(tool=spec.tool) + "\n".join(lines) + "\n")
    return path


def remove_env(spec: EnvSpec, root: Path | None = None) -> bool:
    target = env_path(spec, root)
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def _make_venv(prefix: Path, spec: EnvSpec, progress: Progress | None) -> None:
    _say(progress, f"creating the {spec.label} environment", 0, None)
    # No pip of its own (~20 MB, ~3 s): the core's pip installs into it (``pip --python``).
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--without-pip", str(prefix)], "creating the virtual environment")


def _layer_on_core(prefix: Path) -> None:
    """The core's site-packages after the tool's own, with its ``.pth`` files (the editable
    mlopsbench install among them) processed as in the core environment; then the
    environments named in ``$MLOPSBENCH_EXTRA_SITES`` (see :func:`integration_env`), last."""
    # One line, no comprehension (a .pth line runs in a namespace nested scopes cannot see;
    # the lambda finds os and sys among the site module's own names). A folder already on
    # sys.path is skipped: adding it again would run its .pth files, this one included, again.
    line = (
        "import os, site, sys; list(map(site.addsitedir, filter(lambda p: p and p not in "
        f"sys.path, [{str(core_site_packages())!r}, *os.environ.get({EXTRA_SITES_ENV!r}, '')"
        ".split(os.pathsep)])))\n"
    )
    (site_packages(prefix) / CORE_PTH).write_text(line)


def integration_env(
    tool: str, for_tool: str, create: bool = False, progress: Progress | None = None
) -> dict[str, str]:
    """Environment variables that let ``for_tool``'s processes also import ``tool`` (its
    client library), from ``tool``'s own environment, after everything of their own.

    A Metaflow, Airflow or KFP pipeline that also logs to MLflow needs MLflow's client, as a
    user would ``pip install mlflow`` beside their orchestrator; appending MLflow's environment
    keeps the orchestrator's own versions first for every package both need.
    """
    if tool == for_tool or importable_here(tool):
        return {}
    spec = EnvSpec(tool)
    path = env_path(spec)
    if read_record(path) is None:
        if not create:
            return {}
        create_env(spec, progress=progress)
    return with_extra_site(site_packages(path))


def with_extra_site(site: str | Path) -> dict[str, str]:
    """``$MLOPSBENCH_EXTRA_SITES`` with ``site`` appended (once): every process started with it
    also imports from that site-packages, after its own."""
    sites = [p for p in os.environ.get(EXTRA_SITES_ENV, "").split(os.pathsep) if p]
    return {EXTRA_SITES_ENV: os.pathsep.join(dict.fromkeys([*sites, str(site)]))}


def _pip_install(
    prefix: Path, spec: EnvSpec, progress: Progress | None, pip_cache: Path | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="mlopsbench-env-") as scratch:
        constraints = core_constraints(Path(scratch) / "core-constraints.txt")
        command = [sys.executable, "-m", "pip", "--python", str(env_python(prefix)), "install"]
        command += ["--disable-pip-version-check"]
        command += ["--progress-bar", "off", "-c", str(constraints), *spec.requirements()]
        if spec.version is None:
            command.append("--no-deps")  # the lock is complete: install exactly it
        env = _build_env({"PIP_CACHE_DIR": str(pip_cache)} if pip_cache else {})
        total = _lock_size(spec.lock_path) if spec.version is None else None
        _stream_pip(command, env, total, spec, progress)


def _build_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of pip and of the new environment's own checks: without the extra sites
    a calling process may import from (``$MLOPSBENCH_EXTRA_SITES``, e.g. MLflow's client in a
    test run), pip would count their packages as installed and leave them out of this one."""
    env = {k: v for k, v in os.environ.items() if k != EXTRA_SITES_ENV}
    return {**env, **extra}


def _lock_size(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if "==" in line)


def _stream_pip(
    command: list[str],
    env: dict[str, str],
    total: int | None,
    spec: EnvSpec,
    progress: Progress | None,
) -> None:
    done = 0
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("Collecting "):
                done += 1
                _say(progress, f"{spec.label}: {line.split()[1]}", done, total)
        code = proc.wait(timeout=INSTALL_TIMEOUT_S)
    if code:
        raise ToolUnavailableError(f"cannot install {spec.label}: {pip_reason(lines)}")


def pip_reason(lines: list[str]) -> str:
    """Why pip failed, on one line: for a conflict, what could not be installed and what each
    side asked for; else the registry being unreachable, or pip's last error."""
    text = [line.strip() for line in lines if line.strip()]
    if any("ResolutionImpossible" in line for line in text):
        return "ResolutionImpossible: " + "; ".join(_conflict(text))[:600]
    missing = [
        t for t in text if "No matching distribution" in t or "Could not find a version" in t
    ]
    if missing:
        return missing[-1].removeprefix("ERROR: ")[:500]
    network = [t for t in text if "NewConnectionError" in t or "Name or service not known" in t]
    if network:
        return f"the package registry cannot be reached ({network[-1][:200]})"
    errors = [t for t in text if t.startswith("ERROR:")]
    return (errors or text or ["pip failed without output"])[-1].removeprefix("ERROR: ")[:500]


def _conflict(text: list[str]) -> list[str]:
    """pip's "Cannot install X" line and the requirements listed under "The conflict is caused
    by:" (``The user requested ...``, ``A depends on B``)."""
    found = [t.removeprefix("ERROR: ") for t in text if t.startswith("ERROR: Cannot install")]
    if "The conflict is caused by:" in text:
        start = text.index("The conflict is caused by:") + 1
        for line in text[start:]:
            if not (line.startswith("The user requested") or " depends on " in line):
                break
            found.append(line)
    return found or ["conflicting requirements"]


def _check_imports(prefix: Path, spec: EnvSpec) -> None:
    names = ", ".join(get_tool(spec.tool).requires)
    code = f"import {names}"
    done = subprocess.run(
        [str(env_python(prefix)), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=_build_env({}),
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolUnavailableError(f"{spec.label} installed but does not import: {last[:300]}")


def _record(prefix: Path, spec: EnvSpec, seconds: float, warm: bool) -> EnvRecord:
    site = site_packages(prefix)
    installed = {
        str(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=[str(site)])
        if d.metadata["Name"] and str(d.metadata["Name"]).lower() not in ("pip", "setuptools")
    }
    return EnvRecord(
        tool=spec.tool,
        version=spec.version,
        label=spec.label,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        install_s=round(seconds, 2),
        distributions=len(installed),
        size_mb=round(folder_mb(site), 1),
        installed=dict(sorted(installed.items())),
        core_site=str(core_site_packages()),
        warm_cache=warm,
    )


def folder_mb(path: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                continue
    return total / 1e6


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolUnavailableError(f"{what} failed: {last[:300]}")


def _say(progress: Progress | None, message: str, done: int, total: int | None) -> None:
    if progress is not None:
        progress(message, done, total)


def iter_specs(labels: str) -> Iterator[EnvSpec]:
    for label in (item for item in labels.split(",") if item.strip()):
        yield EnvSpec.parse(label)


def summary(record: EnvRecord | None) -> dict[str, Any]:
    return asdict(record) if record is not None else {}
