"""The machine a compare ran on: versions, CPU, memory, GPU, load — without importing torch."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> str:
    """GPU names from ``nvidia-smi -L`` when present; "none" otherwise (never imports torch)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "none"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (nvidia-smi failed)"
    names = [ln.split("(")[0].strip() for ln in out.stdout.splitlines() if ln.strip()]
    return "; ".join(names) or "none"


def machine_info() -> dict[str, Any]:
    import psutil

    from mlopsbench.result import environment_info

    info: dict[str, Any] = dict(environment_info())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info.update(
        {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count() or 0,
            "cpu_usable": usable,
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "gpu": gpu_info(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )
    for dist in ("apache-airflow-providers-standard", "psutil", "matplotlib"):
        try:
            from importlib import metadata

            info[dist] = metadata.version(dist)
        except Exception:
            continue
    return info
