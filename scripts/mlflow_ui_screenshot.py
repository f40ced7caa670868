"""Check that the MLflow UI renders a pipeline run, and save screenshots of it.

Starts ``mlflow server`` on a free 127.0.0.1 port in a temporary folder, runs the MLflow digits
pipeline against it over HTTP (SimpleNN, 1 epoch: params, metrics, plots, registered model),
then opens the run page and the registered model page in headless Chromium. Besides the PNGs
it dumps each page's rendered DOM and fails unless the run name / model name appear in it: a
blank or error page is caught, not just photographed.

    .venv/bin/python scripts/mlflow_ui_screenshot.py --out runs/mlflow-ui

Needs Debian's ``chromium`` (``apt-get install -y chromium``). Exit code 0 when both pages
rendered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mlopsbench.report.chromium import find_chromium, headless_command

RUN_NAME = "digits-mlflow-ui"  # the run's name in MLflow is its output folder's name


def chromium_args(binary: str, profile: Path) -> list[str]:
    return [*headless_command(binary, profile, "1400,900"), "--virtual-time-budget=15000"]


def capture(binary: str, url: str, png: Path, work: Path) -> str:
    """Screenshot ``url`` to ``png`` and return the rendered DOM (a second, identical load)."""
    base = chromium_args(binary, work / "chromium-profile")
    subprocess.run(
        [*base, f"--screenshot={png}", url], check=True, capture_output=True, timeout=120
    )
    dom = subprocess.run(
        [*base, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120
    )
    return dom.stdout


def run_pipeline(tracking_uri: str, work: Path) -> dict[str, str]:
    from mlopsbench.result import RunRequest
    from mlopsbench.tools.mlflow import adapter
    from mlopsbench.usecases.digits.config import DigitsConfig

    out = work / "runs" / RUN_NAME
    out.mkdir(parents=True)
    cfg = DigitsConfig(model="simple", epochs=1, threshold=0.5)
    result = adapter.run(RunRequest("digits", cfg, out, tracking_uri=tracking_uri))
    if result.status != "ok":
        raise SystemExit(f"pipeline run did not pass: {result.error}")
    return {k: str(v) for k, v in result.tool_info.items() if isinstance(v, str | int)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/mlflow-ui"), help="Folder for the PNGs."
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    binary = find_chromium()
    args.out.mkdir(parents=True, exist_ok=True)

    from mlopsbench.support.net import free_port
    from mlopsbench.support.processes import running
    from mlopsbench.tools.mlflow import server

    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp:
        work = Path(tmp)
        os.environ["TMPDIR"] = str(work)  # HTTP artifact uploads leave temp folders behind
        tempfile.tempdir = None
        proc = server.start_tracking_server(free_port(), root=work / "server")
        with running(proc):
            info = run_pipeline(proc.url, work)
            pages = {
                "mlflow-ui-run.png": (
                    f"{proc.url}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}",
                    RUN_NAME,
                ),
                "mlflow-ui-model.png": (
                    f"{proc.url}/#/models/{info['model_name']}",
                    info["model_name"],
                ),
            }
            ok = True
            for name, (url, expected) in pages.items():
                dom = capture(binary, url, args.out / name, work)
                rendered = expected in dom
                ok &= rendered
                size = (args.out / name).stat().st_size
                print(
                    f"{url}\n  -> {args.out / name} ({size} bytes); '{expected}' in DOM: {rendered}"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
