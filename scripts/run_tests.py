"""The test suite, each part in the environment that can run it: ``python scripts/run_tests.py``.

The core tests run in this interpreter (the core environment); each tool's own tests
(``tests/tools/<tool>/``) run in that tool's environment, which is created first when missing
(``mlopsbench env create``). Extra arguments go to every pytest run (``-x``, ``-m "not slow"``,
``-k name``). Prints each part's result and then one line for all of them; exits non-zero when
any part failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTS = ("passed", "failed", "errors", "skipped")


def main(argv: list[str]) -> int:
    from mlopsbench.toolkit.envs import (
        TRACKING_TOOL,
        EnvSpec,
        importable_here,
        integration_env,
        python_for,
    )
    from mlopsbench.toolkit.registry import tools

    suites = [("core", Path(sys.executable), ["tests"])]
    for name in tools():
        if name == "plain" or not (REPO / "tests" / "tools" / name).is_dir():
            continue
        if importable_here(name):
            continue  # the core run collects it
        started = time.perf_counter()
        python = python_for(EnvSpec(name), create=True, progress=_print_progress)
        print(f"[{name}] environment ready in {time.perf_counter() - started:.0f} s: {python}")
        suites.append((name, python, [f"tests/tools/{name}"]))
    # Every tool's tests also log to MLflow: its client, from MLflow's environment, comes last.
    os.environ.update(integration_env(TRACKING_TOOL, "", create=True, progress=_print_progress))
    totals = dict.fromkeys(COUNTS, 0)
    failed_parts = []
    for label, python, paths in suites:
        code, counts = _pytest(label, python, [*paths, *argv])
        for key in COUNTS:
            totals[key] += counts[key]
        if code not in (0, 5) or (code == 5 and label != "core"):
            failed_parts.append(f"{label} (pytest exit {code})")
    summary = ", ".join(f"{totals[k]} {k}" for k in ("passed", "failed", "skipped"))
    if totals["errors"]:
        summary += f", {totals['errors']} errors"
    print(f"\nall parts: {summary}")
    if failed_parts:
        print(f"failed parts: {', '.join(failed_parts)}")
        return 1
    return 0


def _pytest(label: str, python: Path, args: list[str]) -> tuple[int, dict[str, int]]:
    """Run one part, streaming its output; return its exit code and its closing counts."""
    print(f"\n===== {label}: {python} -m pytest {' '.join(args)}", flush=True)
    proc = subprocess.Popen(
        [str(python), "-m", "pytest", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.strip():
            last = line
    code = proc.wait()
    return code, _counts(last)


def _counts(line: str) -> dict[str, int]:
    found = {key: 0 for key in COUNTS}
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", line):
        found["errors" if word.startswith("error") else word] += int(number)
    return found


def _print_progress(message: str, done: int, total: int | None) -> None:
    if total and done and done % 10 and done != total:
        return  # one line per ten packages
    print(f"  {message} ({done}/{total if total else '?'})", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
