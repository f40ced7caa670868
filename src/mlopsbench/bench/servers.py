"""Time-to-healthy of the tool servers this project can start (``compare --measure-servers``).

Each probe runs in its own process (``python -m mlopsbench.bench.servers TOOL WORKDIR OUT``) and
calls the probe the tool declares (``Tool.server_probe``, in its own folder, so the harness
never imports a tool): start on 127.0.0.1 and a free port, wait until healthy, count the
processes serving it, stop. Tools without a startable server declare no probe; the report lists
the services they would need from their declarations.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 420.0


def measure_servers(tools: Iterable[str], work: Path) -> list[dict[str, Any]]:
    """One ``server`` row per probe-able tool, each probe in its own process (in the tool's
    environment)."""
    from mlopsbench.bench.spawn import run_child
    from mlopsbench.errors import MlopsbenchError
    from mlopsbench.toolkit.envs import EnvSpec, env_labels, python_for
    from mlopsbench.toolkit.registry import get_tool

    rows = []
    for label in env_labels(tools):
        spec = EnvSpec.parse(label)
        if not get_tool(spec.tool).server_probe:
            continue
        folder = work / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "probe.json"
        try:
            python = python_for(spec)
        except MlopsbenchError as exc:
            rows.append(
                {"kind": "server", "tool": spec.label, "healthy_s": None, "error": str(exc)}
            )
            continue
        outcome = run_child(
            ["mlopsbench.bench.servers", spec.tool, str(folder), str(out)],
            python=python,
            cwd=folder,
            env=_env(),
            log_path=folder / "probe.log",
            timeout_s=PROBE_TIMEOUT_S,
        )
        try:
            row = {**json.loads(out.read_text()), "tool": spec.label}
        except (OSError, ValueError):
            reason = "timed out" if outcome.timed_out else f"probe exited {outcome.returncode}"
            row = {"tool": spec.label, "error": f"{reason} (log: {folder / 'probe.log'})"}
        rows.append(
            {"kind": "server", "healthy_s": None, **row, "peak_rss_mb": outcome.tree_peak_rss_mb}
        )
    return rows


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}


def main(argv: list[str]) -> int:
    tool, work, out = argv[0], Path(argv[1]), Path(argv[2])
    try:
        from mlopsbench.toolkit.registry import get_tool

        probe = get_tool(tool).probe()
        if probe is None:
            raise ValueError(f"tool {tool!r} declares no server probe")
        row = {"tool": tool, "error": None, **probe(work)}
    except Exception as exc:  # recorded as the probe's result; the report shows it
        row = {"tool": tool, "error": " ".join(str(exc).split())[:300] or type(exc).__name__}
    from mlopsbench.result import write_json_atomic

    write_json_atomic(out, row)
    return 0 if row["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
