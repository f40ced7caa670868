"""Installation footprint per tool: a fresh uv virtual env, a cold cache, the tool's own packages.

Needs ``uv`` and the package registry, so it only runs with ``compare --measure-install``
(never in tests). torch is excluded: every tool (and plain) needs it, and its wheel would drown
the differences. Versions are pinned to what this environment runs. Each venv and cache is
deleted after it is measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from mlopsbench.errors import ToolUnavailableError

DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "mlflow": ("mlflow",),
    "metaflow": ("metaflow",),
    "airflow": ("apache-airflow", "apache-airflow-providers-standard"),
    "kfp": ("kfp",),
}
INSTALL_TIMEOUT_S = 1200


def find_uv() -> str:
    """The uv executable (on PATH or next to this interpreter), or a one-line error."""
    candidates = [shutil.which("uv"), str(Path(sys.executable).parent / "uv")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolUnavailableError(
        "--measure-install needs uv: pip install uv (it also needs the package registry)"
    )


def pinned(tool: str) -> list[str]:
    specs = []
    for dist in DISTRIBUTIONS.get(tool, ()):
        try:
            specs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            specs.append(dist)
    return specs


def dir_size_mb(root: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total / (1024 * 1024)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S, check=False
    )


def measure_install(tool: str, work: Path, uv: str) -> dict[str, Any]:
    packages = pinned(tool)
    row: dict[str, Any] = {"kind": "install", "tool": tool, "packages": packages, "error": None}
    venv, cache = work / tool, work / f".uv-cache-{tool}"
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "UV_NO_PROGRESS": "1"}
    try:
        t0 = time.perf_counter()
        made = _run([uv, "venv", "--python", sys.executable, str(venv)], env)
        if made.returncode != 0:
            raise RuntimeError(
                made.stderr.strip().splitlines()[-1] if made.stderr.strip() else "uv venv failed"
            )
        python = str(venv / "bin" / "python")
        done = _run([uv, "pip", "install", "--python", python, *packages], env)
        row["seconds"] = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "install failed"
            )
        listed = _run([uv, "pip", "list", "--python", python, "--format", "json"], env)
        row["distributions"] = len(json.loads(listed.stdout or "[]"))
        row["disk_mb"] = dir_size_mb(venv)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
        row["error"] = " ".join(str(exc).split())[:300] or type(exc).__name__
    finally:
        shutil.rmtree(venv, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return row


def measure_installs(tools: Iterable[str], work: Path) -> list[dict[str, Any]]:
    uv = find_uv()
    work.mkdir(parents=True, exist_ok=True)
    rows = [measure_install(t, work, uv) for t in tools if t in DISTRIBUTIONS]
    shutil.rmtree(work, ignore_errors=True)
    return rows
