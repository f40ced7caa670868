"""The tool registry: names, lazy loading, one-line errors for unknown or missing tools."""

from __future__ import annotations

import pytest

from mlopsbench import registry
from mlopsbench.errors import ConfigError, ToolUnavailableError
from mlopsbench.registry import TOOLS, ToolSpec, get_spec, load_runner


def test_the_five_tools() -> None:
    assert tuple(TOOLS) == ("plain", "mlflow", "metaflow", "airflow", "kfp")
    for name, spec in TOOLS.items():
        assert spec.name == name and spec.module.startswith(f"mlopsbench.tools.{name}")


def test_unknown_tool() -> None:
    with pytest.raises(ConfigError) as exc:
        get_spec("jenkins")
    assert str(exc.value) == (
        "unknown tool 'jenkins'; choose one of: plain, mlflow, metaflow, airflow, kfp"
    )
    with pytest.raises(ConfigError):
        load_runner("jenkins")


def test_load_plain_runner() -> None:
    from mlopsbench.tools import plain

    assert get_spec(" Plain ").name == "plain"
    assert load_runner("plain") is plain.run
    assert registry.is_available("plain")


def test_missing_package_is_tool_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ToolSpec("fake", "mlopsbench.tools.fake", ("no_such_package_xyz",), "test double")
    monkeypatch.setitem(TOOLS, "fake", fake)
    assert registry.missing_requirements("fake") == ["no_such_package_xyz"]
    assert not registry.is_available("fake")
    with pytest.raises(ToolUnavailableError, match="needs no_such_package_xyz"):
        load_runner("fake")


def test_module_without_run_is_tool_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TOOLS, "bare", ToolSpec("bare", "mlopsbench.errors", (), "no run()"))
    with pytest.raises(ToolUnavailableError, match="has no run"):
        load_runner("bare")
