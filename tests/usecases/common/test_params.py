"""The core configs as flat parameter lists: the one source every tool's parameters come from."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from typer.testing import CliRunner

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import (
    apply_overrides,
    config_from_params,
    config_params,
    flat_values,
    setting,
    to_params,
)
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.registry import all_usecases, get_usecase
from mlopsbench.usecases.sentiment.config import SentimentConfig


@dataclasses.dataclass(frozen=True)
class Inner:
    path: str | None = setting(None, "Where.")
    ratio: float = setting(0.5, "How much.")


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = setting("a", "The name.", choices=("a", "b"), flag="label")
    count: int | None = setting(None, "How many (all when unset).")
    on: bool = setting(False, "Switch.")
    inner: Inner = setting(default_factory=Inner)


def test_specs_are_flat_typed_and_carry_help() -> None:
    specs = {s.name: s for s in config_params(Outer)}
    assert list(specs) == ["name", "count", "on", "inner_path", "inner_ratio"]
    assert specs["name"].choices == ("a", "b") and specs["name"].cli_flag == "--label"
    assert specs["name"].description == "The name. One of: a, b."
    assert specs["count"].kind is int and specs["count"].optional and specs["count"].default is None
    assert specs["count"].tool_default == 0 and specs["inner_path"].tool_default == ""
    assert specs["on"].kind is bool and not specs["on"].optional
    assert specs["inner_ratio"].help == "How much." and specs["inner_ratio"].default == 0.5


def test_round_trip_through_values_without_none() -> None:
    cfg = Outer(count=3, inner=Inner(path="x"))
    values = to_params(cfg)
    assert values == {"name": "a", "count": 3, "on": False, "inner_path": "x", "inner_ratio": 0.5}
    assert config_from_params(Outer, values) == cfg
    unset = to_params(Outer())
    assert unset["count"] == 0 and unset["inner_path"] == ""
    assert config_from_params(Outer, unset) == Outer()  # unset markers become None again
    assert flat_values(Outer())["count"] is None


def test_unknown_settings_and_bad_types_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown Outer settings: speed"):
        config_from_params(Outer, {"speed": 1})
    with pytest.raises(ConfigError, match="--set count"):
        apply_overrides(flat_values(Outer()), ["count=many"], {"count": "int | None"})


def test_a_non_scalar_setting_is_a_programming_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Bad:
        items: list[str] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match=r"Bad\.items"):
        config_params(Bad)


@pytest.mark.parametrize("config_class", [DigitsConfig, SentimentConfig])
def test_every_core_setting_has_help(config_class: type) -> None:
    for spec in config_params(config_class):
        assert spec.help, f"{config_class.__name__}.{spec.name} has no help text"


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_the_defaults_round_trip_for_every_usecase(usecase: str) -> None:
    case = get_usecase(usecase)
    default = case.config()
    assert case.config(to_params(default)) == default
    assert case.config(dict(default.to_dict())) == default


def _with_default(config_class: type, field: str, value: Any) -> type:
    """The config class as if its source said ``field = value`` (a new class, same module)."""
    fields = [
        (f.name, f.type, dataclasses.field(default=value, metadata=f.metadata))
        if f.name == field
        else (f.name, f.type, f)
        for f in dataclasses.fields(config_class)
    ]
    patched = dataclasses.make_dataclass(
        config_class.__name__, fields, bases=(config_class,), frozen=True
    )
    patched.__module__ = config_class.__module__  # where its annotations' names resolve
    return patched


def test_a_core_default_reaches_the_cli_with_no_other_edit() -> None:
    from mlopsbench.cli.run import usecase_command

    patched = _with_default(DigitsConfig, "epochs", 7)
    case = dataclasses.replace(get_usecase("digits"), config_class=patched)
    import typer

    app = typer.Typer()
    app.command("digits")(usecase_command(case))
    app.command("other")(lambda: None)  # a group, so "digits" is a subcommand
    shown = CliRunner().invoke(app, ["digits", "--help"], env={"COLUMNS": "200"}).output
    assert "Training epochs. [default: 7]" in shown
