"""Capability markers: read from the test files, typo-proof, and the packaged catalogue in step
with them (the report's flexibility/interoperability grids come from it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlopsbench.toolkit import capabilities as caps

REPO = Path(__file__).resolve().parents[2]


def _tests(tmp_path: Path, body: str) -> Path:
    root = tmp_path / "tests"
    (root / "tools" / "toy").mkdir(parents=True)
    (root / "tools" / "toy" / "test_toy.py").write_text(textwrap.dedent(body))
    return root


def test_markers_are_read_without_importing_the_tests(tmp_path: Path) -> None:
    root = _tests(
        tmp_path,
        """
        import pytest
        import module_that_does_not_exist

        @pytest.mark.slow
        @pytest.mark.capability("toy", "fan_out_in", "dynamic_task_count")
        def test_fan_out():
            pass

        class TestGroup:
            @pytest.mark.capability("toy", "retries_backoff")
            def test_retry(self):
                pass

        @pytest.mark.capability("*", "ci_workflow")
        def test_every_tool_job():
            pass

        def helper_not_a_test():
            pass
        """,
    )
    found = caps.catalogue(caps.scan_tests(root))
    assert found["toy"] == {
        "dynamic_task_count": ["tests/tools/toy/test_toy.py::test_fan_out"],
        "fan_out_in": ["tests/tools/toy/test_toy.py::test_fan_out"],
        "retries_backoff": ["tests/tools/toy/test_toy.py::TestGroup::test_retry"],
    }
    flexibility = caps.checklist("toy", "flexibility", found)
    assert flexibility["held"] == 3 and flexibility["total"] == 8
    assert flexibility["score"] == pytest.approx(3.75)
    interop = caps.checklist("toy", "interoperability", found)
    assert interop["held"] == 1  # ci_workflow, from the test parametrised over every tool
    assert caps.checklist("other", "flexibility", found)["held"] == 0


def test_an_unknown_item_is_an_error_not_a_silent_miss(tmp_path: Path) -> None:
    root = _tests(
        tmp_path,
        """
        import pytest

        @pytest.mark.capability("toy", "fan_out")
        def test_typo():
            pass
        """,
    )
    with pytest.raises(ValueError, match="unknown capability item 'fan_out'"):
        caps.scan_tests(root)


def test_marker_arguments_must_be_literals(tmp_path: Path) -> None:
    root = _tests(
        tmp_path,
        """
        import pytest
        TOOL = "toy"

        @pytest.mark.capability(TOOL, "fan_out_in")
        def test_indirect():
            pass
        """,
    )
    with pytest.raises(ValueError, match="takes strings"):
        caps.scan_tests(root)


def test_the_packaged_catalogue_is_the_one_the_tests_declare() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "capabilities.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_claim_names_a_declared_tool_and_a_real_test() -> None:
    from mlopsbench.toolkit.registry import tool_names

    found = caps.load_catalogue()
    assert set(found) <= {*tool_names(), caps.EVERY_TOOL}
    for items in found.values():
        for tests in items.values():
            for test in tests:
                path, _, name = test.partition("::")
                assert (REPO / path).is_file(), test
                assert f"def {name.split('::')[-1]}(" in (REPO / path).read_text(), test
