"""Test-wide isolation: no test touches the user's home, the network or a shared temp folder.

Set before any tool is imported: MLflow writes ~/.config/mlflow, Airflow creates ~/airflow,
Metaflow caches in /tmp/metaflow_client, KFP and HTTP logging leave folders in $TMPDIR.
"""

from __future__ import annotations

import os
import signal
import site
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
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


def _mlflow_client_in_a_tool_environment() -> None:
    """MLflow's client from MLflow's own environment, after the tool's packages, in this process
    and the ones it starts: what ``scripts/run_tests.py`` and ``mlopsbench run --tracking-uri``
    set up, so that ``python -m pytest tests/tools/<tool>`` in a tool's environment works on
    its own too (pipelines log to MLflow; the tests read MLflow back).

    ``envs.integration_env`` looks for environments under ``sys.prefix``, which inside a tool's
    environment is that environment: its siblings are one folder up.
    """
    from mlopsbench.toolkit import envs

    if envs.importable_here(envs.TRACKING_TOOL) or envs.read_record(Path(sys.prefix)) is None:
        return
    mlflow_env = Path(sys.prefix).parent / envs.TRACKING_TOOL
    if envs.read_record(mlflow_env) is None:
        return  # the MLflow tests then fail on the import, saying what is missing
    folder = envs.site_packages(mlflow_env)
    site.addsitedir(str(folder))
    os.environ.update(envs.with_extra_site(folder))


_mlflow_client_in_a_tool_environment()


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


FAIL_STAGE_ENV = "MLOPSBENCH_TEST_FAIL_STAGE"
FAIL_ONCE_ENV = "MLOPSBENCH_TEST_FAIL_ONCE"  # a marker file: fail only while it does not exist

# Loaded by every Python process started with this folder on PYTHONPATH (a tool's worker, its
# step or stage processes): wraps the core stage named in $MLOPSBENCH_TEST_FAIL_STAGE
# ("module:function:ErrorName") to raise; with $MLOPSBENCH_TEST_FAIL_ONCE, only the first call
# does (a transient fault).
SITECUSTOMIZE = textwrap.dedent(
    f"""
    import os

    _target = os.environ.get("{FAIL_STAGE_ENV}", "")
    if _target:
        import functools
        import importlib

        import mlopsbench.errors

        _module_name, _stage, _error = _target.split(":")
        _module = importlib.import_module(_module_name)
        _original = getattr(_module, _stage)
        _error_class = getattr(mlopsbench.errors, _error, RuntimeError)

        @functools.wraps(_original)
        def _failing(*args, **kwargs):
            marker = os.environ.get("{FAIL_ONCE_ENV}")
            if marker and os.path.exists(marker):
                return _original(*args, **kwargs)
            if marker:
                open(marker, "w").close()
            raise _error_class(f"injected failure in {{_stage}}")

        setattr(_module, _stage, _failing)
    """
)


@pytest.fixture
def fail_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``fail_stage("mlopsbench.usecases.digits.stages:train_model", "DataError", once=False)``:
    from then on that core stage raises in every process the test starts (tools pass their
    environment on to their steps); undo with ``monkeypatch.delenv(FAIL_STAGE_ENV)``. The
    pipeline files know nothing of it."""
    folder = tmp_path / "fault-injection"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

    def fail(target: str, error: str = "RuntimeError", once: bool = False) -> None:
        monkeypatch.setenv(FAIL_STAGE_ENV, f"{target}:{error}")
        if once:
            monkeypatch.setenv(FAIL_ONCE_ENV, str(folder / "failed-once"))

    yield fail


def _as_in_a_terminal() -> None:
    """Ctrl-C and a closed terminal stop a CLI we start, whatever started the tests: a
    background job (``cmd &`` without job control) or ``nohup`` ignore SIGINT/SIGHUP, children
    inherit that, and the CLI rightly keeps an ignored signal ignored."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.fixture
def as_in_a_terminal() -> Callable[[], None]:
    """A ``preexec_fn`` for a CLI that a test stops with SIGINT or SIGHUP."""
    return _as_in_a_terminal
