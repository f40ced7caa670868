"""``import mlopsbench`` (and the CLI and the tool declarations) must stay light: no torch, no MLOps tool."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "mlflow", "airflow", "metaflow", "kfp", "transformers")

PROBE = f"""
import json, sys, time
t0 = time.perf_counter()
import mlopsbench, mlopsbench.cli, mlopsbench.toolkit.registry
mlopsbench.toolkit.registry.tools()  # reading every declaration imports no tool
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"seconds": elapsed, "heavy": heavy}}))
"""


def test_import_pulls_in_no_heavy_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"import mlopsbench, mlopsbench.cli, mlopsbench.toolkit.registry: {probe['seconds']:.3f} s"
    )
    assert probe["heavy"] == []
