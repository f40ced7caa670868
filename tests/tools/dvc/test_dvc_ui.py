"""DVC's UI: no server, the static page ``dvc plots show`` writes. Rendered in headless Chromium.

The page's figures (confusion matrix, t-SNE, training curve) are local PNGs and render offline;
DVCLive's per-epoch series are vega-lite plots whose scripts load from a CDN, so here (no
internet) their containers stay empty: the test checks they are on the page, not drawn.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlopsbench.report.chromium import headless_command
from mlopsbench.result import RunResult

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium() -> str:
    from mlopsbench.report.chromium import BROWSERS

    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        pytest.skip("no Chromium (apt-get install -y chromium)")
    return found


def _browse(chromium: str, page: Path, work: Path, action: str) -> str:
    command = [*headless_command(chromium, work / "profile", "1400,1000")]
    command += ["--virtual-time-budget=10000", action, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_plots_page_renders(digits_run: RunResult, chromium: str, tmp_path: Path) -> None:
    page = Path(digits_run.artifacts["plots_html"])
    assert page == Path(digits_run.tool_info["run_dir"]) / "plots" / "index.html"
    dom = _browse(chromium, page, tmp_path, "--dump-dom")
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert sorted(Path(src).name for src in images) == [
        "workspace_eval_confusion_matrix.png",
        "workspace_eval_training_curve.png",
        "workspace_eval_tsne.png",
    ]
    for src in images:
        assert (page.parent / src).read_bytes().startswith(PNG_MAGIC), src
    for metric in ("train_loss", "test_accuracy"):  # DVCLive's series: vega-lite containers
        assert f'id="dvclive_plots_metrics_{metric}_tsv"' in dom
    shot = tmp_path / "plots.png"
    _browse(chromium, page, tmp_path, f"--screenshot={shot}")
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 20_000
