"""``mlopsbench doctor``: is this machine ready, and what to do where it is not.

Each check returns a :class:`Check` with a status: ``ok`` (✓), ``warn`` (!: worth knowing, the
default run still works) or ``error`` (✗: blocks the default run, ``mlopsbench run digits`` on
the bundled data). Versions come from ``importlib.metadata``, never from importing the tools
(importing MLflow or Airflow costs seconds); torch is imported only for the CUDA/bf16 check, and
nothing here touches the network except a ``/health`` probe of a tracking server the user set.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlopsbench.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

Status = Literal["ok", "warn", "error"]

LOCK_FILE = "requirements.lock"
INSTALL_HINT = "pip install -r requirements.lock && pip install --no-deps -e ."

# Packages every run needs one row each beside the tools' (a missing tool disables that tool).
REQUIRED_TOOL_PACKAGES = frozenset({"torch"})
# One row together: the rest of what the default run (plain tool, bundled digits) imports.
CORE_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "safetensors",
    "matplotlib",
    "typer",
    "rich",
    "psutil",
)

MNIST_REPO = "ylecun/mnist"
IMDB_REPO = "stanfordnlp/imdb"
# The sentiment model under its canonical id and the legacy id the paper (and transformers'
# pipeline default) use; the hub cache is keyed by whichever id was downloaded.
SST2_MODEL_REPOS = (
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "distilbert-base-uncased-finetuned-sst-2-english",
)
MODEL_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# What to do when a hub download is not cached (offline alternatives first).
_MNIST_FIX = "offline: keep the default --data sklearn (bundled); online, once: mlopsbench run digits --data hf"
_IMDB_FIX = (
    "offline: mlopsbench run sentiment --smoke, or --data aclimdb --data-path aclImdb/; "
    "online, once: mlopsbench run sentiment"
)
_MODEL_FIX = (
    "offline: mlopsbench run sentiment --smoke (tiny model) or --model-path DIR; "
    "online, once: mlopsbench run sentiment"
)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""  # what to do about it; empty when nothing needs doing


@dataclass(frozen=True)
class DoctorConfig:
    """What to check. ``None`` means: find it the usual way (see :func:`find_lock_file`)."""

    lock_path: Path | None = None
    runs_dir: Path = Path("runs")
    ports: tuple[tuple[str, int], ...] | None = None  # None: every declared server's default
    hf_cache: Path | None = None  # huggingface_hub's cache folder (default: its HF_HUB_CACHE)
    datasets_cache: Path | None = None  # the `datasets` library's cache (default: its own)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    check_torch: bool = True
    health_timeout_s: float = 2.0


# ---------------------------------------------------------------------------------------------
# Python and packages
# ---------------------------------------------------------------------------------------------


def check_python(version: tuple[int, int, int] | None = None) -> Check:
    """The project is tested on, and pins wheels for, Python 3.11 only."""
    major, minor, micro = version or (
        sys.version_info.major,
        sys.version_info.minor,
        sys.version_info.micro,
    )
    text = f"{major}.{minor}.{micro} ({platform.python_implementation()})"
    if (major, minor) == (3, 11):
        return Check("python", "ok", text)
    return Check(
        "python",
        "error",
        f"{text}: mlopsbench needs Python 3.11 (the lock file pins 3.11 wheels)",
        "create the environment with Python 3.11: python3.11 -m venv .venv",
    )


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, str]:
    """``name==version`` pins of a requirements/lock file (names normalized, PEP 503)."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if match:
            pins[_normalize(match.group(1))] = match.group(2)
    return pins


def find_lock_file(start: Path | None = None) -> Path | None:
    """The lock file of this checkout: in the working folder or a parent, else the source tree
    the package is installed from (an editable install from a clone)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LOCK_FILE).is_file() and (folder / "pyproject.toml").is_file():
            return folder / LOCK_FILE
    source_root = Path(__file__).resolve().parents[2]  # src/mlopsbench/doctor.py -> the clone
    candidate = source_root / LOCK_FILE
    return candidate if candidate.is_file() else None


def _installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _same_version(installed: str, pinned: str) -> bool:
    # A local build label (torch's "+cpu") still satisfies "==2.13.0", as pip decides too.
    return installed == pinned or installed.split("+", 1)[0] == pinned.split("+", 1)[0]


def check_package(dist: str, pins: Mapping[str, str] | None, *, required: bool) -> Check:
    """One distribution: installed at all, and at the version the lock file pins."""
    installed = _installed_version(dist)
    pinned = pins.get(_normalize(dist)) if pins else None
    if installed is None:
        if required:
            return Check(dist, "error", "not installed: every run needs it", INSTALL_HINT)
        return Check(
            dist, "warn", "not installed: the tool that needs it is unavailable", INSTALL_HINT
        )
    if pinned is None:
        return Check(
            dist, "ok", f"{installed}" + ("" if pins is None else " (not in the lock file)")
        )
    if _same_version(installed, pinned):
        return Check(dist, "ok", f"{installed} (lock {pinned})")
    return Check(
        dist,
        "warn",
        f"{installed}, but the lock file pins {pinned}: results may differ from the tested setup",
        f"pip install '{dist}=={pinned}' (or: {INSTALL_HINT})",
    )


def _listing(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (", …" if len(items) > limit else "")


def check_package_group(
    name: str, dists: Iterable[str], pins: Mapping[str, str] | None, *, required: bool
) -> Check:
    """Many distributions summed up in one row: missing ones, and ones off the lock file."""
    missing: list[str] = []
    differ: list[str] = []
    dists = sorted({_normalize(d) for d in dists})
    for dist in dists:
        installed = _installed_version(dist)
        pinned = pins.get(dist) if pins else None
        if installed is None:
            missing.append(dist)
        elif pinned is not None and not _same_version(installed, pinned):
            differ.append(f"{dist} {installed}≠{pinned}")
    if not missing and not differ:
        against = " and match the lock file" if pins else ""
        return Check(name, "ok", f"all {len(dists)} installed{against}")
    parts = [f"{len(missing)} missing ({_listing(missing)})"] if missing else []
    parts += [f"{len(differ)} differ from the lock ({_listing(differ)})"] if differ else []
    return Check(name, "error" if missing and required else "warn", "; ".join(parts), INSTALL_HINT)


CORE_TOOL_PACKAGES = ("torch", "transformers")  # one row each: every run needs torch


def check_packages(lock_path: Path | None) -> list[Check]:
    """The lock file, torch and transformers, the core's packages, all other pins, and one row
    per tool environment."""
    pins: dict[str, str] | None = None
    if lock_path is None:
        rows = [
            Check(
                "lock file",
                "warn",
                f"no {LOCK_FILE} found here or in the source tree: versions are not compared",
                f"run doctor from the project folder, or pass --lock PATH/{LOCK_FILE}",
            )
        ]
    else:
        try:
            pins = parse_lock(lock_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read lock file {lock_path}: {exc}") from None
        rows = [Check("lock file", "ok", f"{lock_path} ({len(pins)} pins)")]
    rows += [
        check_package(d, pins, required=d in REQUIRED_TOOL_PACKAGES) for d in CORE_TOOL_PACKAGES
    ]
    rows.append(check_package_group("core packages", CORE_PACKAGES, pins, required=True))
    if pins:
        shown = {_normalize(d) for d in (*CORE_TOOL_PACKAGES, *CORE_PACKAGES)} | {"mlopsbench"}
        others = [d for d in pins if d not in shown]
        rows.append(check_package_group("other locked packages", others, pins, required=False))
    return rows + check_tool_envs()


def check_tool_envs() -> list[Check]:
    """Each tool: importable in this environment, or its own environment ready and matching its
    lock; a missing one is only a warning (it is created on first use)."""
    from mlopsbench.toolkit import envs
    from mlopsbench.toolkit.registry import tools

    rows = []
    for name, tool in tools().items():
        if not tool.distributions:
            continue
        label = f"{name} environment"
        if envs.importable_here(name):
            rows.append(Check(label, "ok", "importable in this (core) environment"))
            continue
        path = envs.env_path(envs.EnvSpec(name))
        record = envs.read_record(path)
        if record is None:
            rows.append(
                Check(
                    label,
                    "warn",
                    "not created yet: built from its lock on first use (needs the registry)",
                    f"mlopsbench env create {name}",
                )
            )
            continue
        first = tool.distributions[0].split("[", 1)[0]  # zenml[server] is zenml
        rows.append(_env_check(label, name, first, record, path))
    return rows


def _env_check(label: str, name: str, first: str, record: Any, path: Path) -> Check:
    from mlopsbench.toolkit import envs

    locked = envs.locked_version(name)
    installed = next(
        (v for k, v in record.installed.items() if _normalize(k) == _normalize(first)), None
    )
    detail = f"{first} {installed}, {record.distributions} dists, {record.size_mb:.0f} MB ({path})"
    if locked and installed and not _same_version(installed, locked):
        return Check(
            label,
            "warn",
            f"{detail}: the lock now pins {locked}",
            f"mlopsbench env create --force {name}",
        )
    return Check(label, "ok", detail)


# ---------------------------------------------------------------------------------------------
# torch: CUDA, bf16
# ---------------------------------------------------------------------------------------------


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe_bf16(flags: set[str]) -> Check:
    """bf16 autocast works on any CPU, but is only faster than fp32 with native support."""
    native = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if native:
        return Check(
            "bf16 on CPU", "ok", f"native ({', '.join(native)}): --precision bf16 is fast here"
        )
    if not flags:
        return Check("bf16 on CPU", "ok", "unknown on this OS: keep the default --precision fp32")
    return Check(
        "bf16 on CPU",
        "ok",
        "emulated (no AMX/AVX512-BF16): keep the default --precision fp32, bf16 would be slower",
    )


def check_torch() -> list[Check]:
    """Import torch (the only heavy import here) to see CUDA and the CPU's capability."""
    try:
        import torch
    except Exception as exc:  # a broken install raises all sorts of errors, not just ImportError
        return [Check("torch", "error", f"cannot import torch: {exc}", INSTALL_HINT)]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        device = Check(
            "torch device",
            "ok",
            f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)} ({count} GPU): --device cuda",
        )
    else:
        build = (
            "CPU build"
            if torch.version.cuda is None
            else f"CUDA {torch.version.cuda} build, no GPU visible"
        )
        device = Check("torch device", "ok", f"CPU only ({build}): runs use --device cpu")
    return [device, describe_bf16(_cpu_flags())]


# ---------------------------------------------------------------------------------------------
# Ports, data, programs, environment, output folder
# ---------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server bind ``host:port``? (SO_REUSEADDR: a socket in TIME_WAIT does not count.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_port(label: str, port: int) -> Check:
    name = f"port {port}"
    if port_is_free(port):
        return Check(name, "ok", f"free on 127.0.0.1 ({label})")
    return Check(
        name,
        "warn",
        f"in use on 127.0.0.1: the {label} cannot start on it",
        f"stop what listens there (ss -ltnp 'sport = :{port}'), or start the server with --port N",
    )


def server_ports() -> tuple[tuple[str, int], ...]:
    """(label, default port) of every server a declared tool starts (its ``server`` command)."""
    import inspect

    from mlopsbench.errors import ToolUnavailableError
    from mlopsbench.toolkit.registry import tools

    ports = []
    for tool in tools().values():
        try:
            commands = tool.import_commands()
        except ToolUnavailableError:
            continue
        server = getattr(commands, "server", None)
        port = inspect.signature(server).parameters.get("port") if server else None
        if port is not None and isinstance(port.default, int):
            ports.append((f"{tool.title} server", port.default))
    return tuple(ports)


def check_bundled_digits() -> Check:
    """scikit-learn ships the 8×8 digits the default run uses: no download, ever."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return Check("digits (bundled)", "error", "scikit-learn is not installed", INSTALL_HINT)
    data = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if data.is_file():
        return Check("digits (bundled)", "ok", "scikit-learn's digits: available offline")
    return Check(
        "digits (bundled)",
        "error",
        f"{data} is missing: the scikit-learn install is incomplete",
        "pip install --force-reinstall scikit-learn (the version in requirements.lock)",
    )


def _hub_cache(cfg: DoctorConfig) -> Path:
    if cfg.hf_cache is not None:
        return cfg.hf_cache
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _datasets_cache(cfg: DoctorConfig) -> Path:
    if cfg.datasets_cache is not None:
        return cfg.datasets_cache
    if cfg.env.get("HF_DATASETS_CACHE"):
        return Path(cfg.env["HF_DATASETS_CACHE"])
    hf_home = cfg.env.get("HF_HOME") or str(
        Path(cfg.env.get("HOME", "~")) / ".cache" / "huggingface"
    )
    return Path(hf_home).expanduser() / "datasets"


def cached_hub_repos(cache: Path) -> dict[tuple[str, str], int]:
    """``(repo_type, repo_id) -> files`` in a hub cache, read from disk only (no network)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return {}
    return {(repo.repo_type, repo.repo_id): repo.nb_files for repo in info.repos}


def check_hf_dataset(
    repo_id: str, cfg: DoctorConfig, hub: Mapping[tuple[str, str], int], fix: str
) -> Check:
    """A hub dataset is usable offline if the hub cache or the `datasets` cache holds it."""
    name = f"{repo_id} (HF dataset)"
    if hub.get(("dataset", repo_id)):
        return Check(name, "ok", "in the Hugging Face hub cache: loads offline")
    built = _datasets_cache(cfg) / repo_id.replace("/", "___")
    if built.is_dir() and any(built.iterdir()):
        return Check(name, "ok", f"in the datasets cache ({built}): loads offline")
    return Check(name, "warn", "not cached: needs the internet the first time", fix)


def check_hf_model(cfg: DoctorConfig) -> Check:
    """The sentiment model: its config and weights in the hub cache, found without network."""
    from huggingface_hub import try_to_load_from_cache

    cache = _hub_cache(cfg)
    name = "distilBERT SST-2 (HF model)"
    for repo_id in SST2_MODEL_REPOS:
        config = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache)
        if not isinstance(config, str):
            continue
        if any(
            isinstance(try_to_load_from_cache(repo_id, w, cache_dir=cache), str)
            for w in MODEL_WEIGHTS
        ):
            return Check(name, "ok", f"{repo_id} in the Hugging Face cache: loads offline")
        return Check(name, "warn", f"{repo_id}: config cached but no weights", _MODEL_FIX)
    return Check(name, "warn", "not cached: needs the internet the first time", _MODEL_FIX)


def check_hf_data(cfg: DoctorConfig) -> list[Check]:
    try:
        hub = cached_hub_repos(_hub_cache(cfg))
    except Exception as exc:  # a corrupt cache must not stop the other checks
        return [
            Check(
                "Hugging Face cache", "warn", f"cannot read it: {exc}", "huggingface-cli scan-cache"
            )
        ]
    return [
        check_hf_dataset(MNIST_REPO, cfg, hub, _MNIST_FIX),
        check_hf_dataset(IMDB_REPO, cfg, hub, _IMDB_FIX),
        check_hf_model(cfg),
    ]


def check_chromium() -> Check:
    found = next((p for p in (shutil.which(b) for b in BROWSERS) if p), None)
    if found:
        return Check("chromium", "ok", f"{found}: report screenshots work")
    return Check(
        "chromium",
        "warn",
        "not found: report screenshots are skipped (the HTML report itself still works)",
        "apt-get install chromium (Debian/Ubuntu), or put chromium on PATH",
    )


def check_tracking_uri(cfg: DoctorConfig) -> Check:
    uri = cfg.env.get("MLFLOW_TRACKING_URI", "").strip()
    name = "MLFLOW_TRACKING_URI"
    if not uri:
        return Check(
            name,
            "ok",
            "unset: the mlflow tool logs to a local store; other tools don't log to MLflow",
        )
    from mlopsbench.support.net import http_ok
    from mlopsbench.support.uris import redact_uri

    shown = redact_uri(uri)
    if not uri.startswith(("http://", "https://")):
        return Check(name, "ok", f"{shown}: every tool also logs to this store")
    if http_ok(uri.rstrip("/") + "/health", cfg.health_timeout_s):
        return Check(name, "ok", f"{shown}: server answers /health; every tool also logs there")
    return Check(
        name,
        "warn",
        f"{shown}: no answer on /health, so runs that log to MLflow will fail",
        "start it (mlopsbench server mlflow), fix the URI, or unset MLFLOW_TRACKING_URI",
    )


def check_hf_offline(cfg: DoctorConfig) -> Check:
    value = cfg.env.get("HF_HUB_OFFLINE", "").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return Check("HF_HUB_OFFLINE", "ok", f"{value}: the Hugging Face hub is never contacted")
    return Check(
        "HF_HUB_OFFLINE",
        "warn",
        "unset: transformers/datasets ask the hub first (slow time-outs on an offline machine)",
        "export HF_HUB_OFFLINE=1 on machines without internet",
    )


def check_runs_dir(runs_dir: Path) -> Check:
    """Results go to ``runs/<usecase>-<tool>-<time>/``: the folder must be writable."""
    name = f"{runs_dir}/ writable"
    if runs_dir.exists() and not runs_dir.is_dir():
        return Check(
            name, "error", f"{runs_dir} exists and is not a folder", "pass --out DIR to the run"
        )
    if runs_dir.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".doctor-"):
                pass
        except OSError as exc:
            return Check(
                name,
                "error",
                f"cannot write there: {exc.strerror}",
                "fix its permissions or pass --out DIR",
            )
        return Check(name, "ok", "results can be written")
    parent = next((p for p in runs_dir.absolute().parents if p.exists()), None)
    if parent is not None and os.access(parent, os.W_OK | os.X_OK):
        return Check(name, "ok", f"will be created in {parent}")
    return Check(
        name,
        "error",
        f"cannot create it ({parent} is not writable)",
        "pass --out DIR to a writable folder",
    )


# ---------------------------------------------------------------------------------------------
# All together
# ---------------------------------------------------------------------------------------------


def run_checks(cfg: DoctorConfig) -> list[Check]:
    """Every check, in the order the table shows them."""
    lock = cfg.lock_path if cfg.lock_path is not None else find_lock_file()
    if cfg.lock_path is not None and not cfg.lock_path.is_file():
        raise ConfigError(f"lock file not found: {cfg.lock_path}")
    checks = [check_python(), *check_packages(lock)]
    if cfg.check_torch:
        checks += check_torch()
    ports = cfg.ports if cfg.ports is not None else server_ports()
    checks += [check_port(label, port) for label, port in ports]
    checks += [check_bundled_digits(), *check_hf_data(cfg), check_chromium()]
    checks += [check_tracking_uri(cfg), check_hf_offline(cfg), check_runs_dir(cfg.runs_dir)]
    return checks


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing blocks the default run, 1 otherwise (warnings don't count)."""
    return 1 if any(c.status == "error" for c in checks) else 0


def to_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": exit_code(checks) == 0, "checks": [asdict(c) for c in checks]}


_SYMBOLS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "error": "[bold red]✗[/]"}


def render(checks: list[Check], console: Console) -> None:
    """The rich table, then one line that says whether the default run can go ahead."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="mlopsbench doctor")
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result, and what to do", overflow="fold")
    for check in checks:
        text = escape(check.detail)
        if check.fix:
            text += f"\n[cyan]→ {escape(check.fix)}[/]"
        table.add_row(_SYMBOLS[check.status], escape(check.name), text)
    console.print(table)
    errors = sum(c.status == "error" for c in checks)
    warnings = sum(c.status == "warn" for c in checks)
    if errors:
        console.print(
            f"[bold red]✗ {errors} problem(s) block `mlopsbench run digits`[/]; {warnings} warning(s)."
        )
    else:
        console.print(f"[green]✓ nothing blocks `mlopsbench run digits`[/]; {warnings} warning(s).")
