"""Installation footprint per tool, from the real per-tool environments the runs use.

Every compare records, for each tool it ran, what that tool's environment holds: the seconds its
install took when it was created, its distributions and its size on disk (the tool's own
packages: the core — torch included — is shared by every tool and counted once, apart).
``compare --measure-install`` also builds each environment again from the package registry in a
scratch folder, first with an empty pip cache (cold: downloads included), then with the cache the
first build filled (warm), and records both, or pip's reason when a tool does not resolve.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.toolkit import envs


def _row(spec: envs.EnvSpec, cache: str) -> dict[str, Any]:
    return {
        "kind": "install",
        "tool": spec.label,
        "packages": spec.top_level(),
        "cache": cache,
        "error": None,
    }


def environment_rows(labels: Iterable[str]) -> list[dict[str, Any]]:
    """One row per tool environment the runs used, from its record (no install happens)."""
    rows = []
    for label in envs.env_labels(labels):
        spec = envs.EnvSpec.parse(label)
        record = envs.read_record(envs.env_path(spec))
        if record is None:
            continue  # the tool ran in the core environment, or has no environment
        rows.append(
            {
                **_row(spec, "as created" if record.warm_cache else "cold"),
                "seconds": record.install_s,
                "distributions": record.distributions,
                "disk_mb": record.size_mb,
                "created_at": record.created_at,
            }
        )
    return rows


def core_row() -> dict[str, Any]:
    """The shared core environment's size (every tool needs it; counted once)."""
    site = envs.core_site_packages()
    return {
        "kind": "install",
        "tool": "core (shared)",
        "packages": ["requirements.lock"],
        "cache": "existing",
        "distributions": sum(1 for _ in site.glob("*.dist-info")),
        "disk_mb": round(envs.folder_mb(site), 1),
        "seconds": None,
        "error": None,
    }


def measure_install(spec: envs.EnvSpec, work: Path) -> list[dict[str, Any]]:
    """Build ``spec``'s environment twice in ``work``: cold pip cache, then warm."""
    cache = work / f".pip-cache-{spec.name}"
    rows = []
    for kind in ("cold", "warm"):
        row = _row(spec, kind)
        started = time.perf_counter()
        try:
            path = envs.create_env(spec, root=work / kind, pip_cache=cache)
        except MlopsbenchError as exc:
            row["error"] = str(exc)
            rows.append(row)
            break
        record = envs.read_record(path)
        assert record is not None
        row.update(
            seconds=round(time.perf_counter() - started, 2),
            distributions=record.distributions,
            disk_mb=record.size_mb,
        )
        rows.append(row)
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return rows


def measure_installs(labels: Iterable[str], work: Path) -> list[dict[str, Any]]:
    """Cold and warm builds of every tool environment among ``labels`` (needs the registry)."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for label in envs.env_labels(labels):
        spec = envs.EnvSpec.parse(label)
        if spec.tool != "plain":
            rows += measure_install(spec, work)
    shutil.rmtree(work, ignore_errors=True)
    return rows
