"""Test-wide isolation: no test touches the user's home, the network or a shared temp folder.

Set before any tool is imported: MLflow writes ~/.config/mlflow, Airflow creates ~/airflow,
Metaflow caches in /tmp/metaflow_client, KFP and HTTP logging leave folders in $TMPDIR.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SANDBOX = Path(tempfile.mkdtemp(prefix="mlopsbench-tests-"))
for _name in ("home", "tmp", "airflow", "metaflow_client"):
    (_SANDBOX / _name).mkdir(exist_ok=True)

os.environ.update(
    {
        "HOME": str(_SANDBOX / "home"),
        "TMPDIR": str(_SANDBOX / "tmp"),
        "AIRFLOW_HOME": str(_SANDBOX / "airflow"),
        "METAFLOW_USER": "mlopsbench-tests",
        "METAFLOW_CLIENT_CACHE_PATH": str(_SANDBOX / "metaflow_client"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
os.environ.pop("MLFLOW_TRACKING_URI", None)
tempfile.tempdir = None  # re-read TMPDIR


def _tools_not_here() -> list[str]:
    """Declared tools this interpreter cannot import: each one's tests run in its own
    environment (``python scripts/run_tests.py`` does that), not here."""
    from mlopsbench.toolkit.envs import importable_here
    from mlopsbench.toolkit.registry import tools

    return [name for name in tools() if name != "plain" and not importable_here(name)]


ELSEWHERE = _tools_not_here()
collect_ignore_glob = [f"tools/{name}/*" for name in ELSEWHERE]


def pytest_report_header() -> str:
    if not ELSEWHERE:
        return "tool suites: all run in this interpreter"
    return (
        f"tool suites not run by this interpreter (each runs in its own environment: "
        f"python scripts/run_tests.py): {', '.join(ELSEWHERE)}"
    )


@pytest.fixture(scope="session")
def sandbox() -> Path:
    """The session's private folder (HOME, TMPDIR and tool homes live under it)."""
    return _SANDBOX
