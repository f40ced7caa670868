"""What the machine can do fast, for the use cases' ``auto`` settings (no torch import here)."""

from __future__ import annotations

from pathlib import Path


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 math (AMX or AVX512-BF16); else bf16 would be slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
