"""The core configs as flat, typed parameter lists: the one source of tool parameters.

Every tool exposes the use case's settings in its own way — Metaflow ``Parameter``s, Airflow
``Param``s, KFP pipeline arguments, CLI options — and all of them are built from
:func:`config_params`, which reads the frozen config dataclass: names, types, defaults, help
text and choices. Changing a default in the core changes it everywhere.

Nested configs are flattened with their field name as prefix (``DigitsConfig.data.path`` is
``data_path``), the same keys as the configs' ``to_dict()``. Tools that cannot pass ``None``
(Metaflow, KFP) send an optional setting's :attr:`ParamSpec.unset` value instead (``""``,
``0``, ``0.0``); :func:`config_from_params` turns it back into ``None``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlopsbench.errors import ConfigError

T = TypeVar("T")

_UNSET = {str: "", int: 0, float: 0.0, bool: False}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: tuple[str, ...] = (),
    flag: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with the help text and choices every tool shows for it.

    ``flag`` is the CLI option's name when it differs from the field's (``--data``).
    """
    metadata = {"help": help, "choices": tuple(choices), "flag": flag}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ParamSpec:
    """One flat setting of a use case, as every tool's parameter system needs it."""

    name: str  # flat key, as in the config's to_dict(): "epochs", "data_path"
    kind: type  # str, int, float or bool
    default: Any  # the config's default (None for an optional setting left unset)
    optional: bool  # None is a valid value ("use the derived default")
    help: str
    choices: tuple[str, ...] = ()
    flag: str | None = None

    @property
    def unset(self) -> Any:
        """What a tool that cannot pass None sends for "no value"."""
        return _UNSET[self.kind]

    @property
    def tool_default(self) -> Any:
        """The default as a tool without None sees it."""
        return self.unset if self.default is None else self.default

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name).replace("_", "-")

    @property
    def description(self) -> str:
        """Help text plus the choices and what an unset optional value means."""
        text = self.help
        if self.choices:
            text += f" One of: {', '.join(self.choices)}."
        return text.strip()


def config_params(config_class: type) -> tuple[ParamSpec, ...]:
    """The flat settings of a config dataclass, in declaration order."""
    return tuple(_flatten(config_class, prefix=""))


def _flatten(config_class: type, prefix: str) -> list[ParamSpec]:
    hints = typing.get_type_hints(config_class)
    specs: list[ParamSpec] = []
    for item in dataclasses.fields(config_class):
        annotation = hints[item.name]
        if dataclasses.is_dataclass(annotation):
            specs += _flatten(annotation, prefix=f"{prefix}{item.name}_")  # type: ignore[arg-type]
            continue
        kind, optional = _scalar(annotation, f"{config_class.__name__}.{item.name}")
        meta = item.metadata
        specs.append(
            ParamSpec(
                name=prefix + item.name,
                kind=kind,
                default=None if item.default is dataclasses.MISSING else item.default,
                optional=optional,
                help=str(meta.get("help", "")),
                choices=tuple(meta.get("choices", ())),
                flag=meta.get("flag"),
            )
        )
    return specs


def _scalar(annotation: Any, where: str) -> tuple[type, bool]:
    """``int`` -> (int, False); ``int | None`` -> (int, True); anything else is a bug."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1 and kinds[0] in _UNSET:
            return kinds[0], True
    elif annotation in _UNSET:
        return annotation, False
    raise TypeError(
        f"{where}: settings must be str, int, float or bool (optional), not {annotation}"
    )


def to_params(cfg: Any) -> dict[str, Any]:
    """A config as flat parameter values for a tool without None (optional -> unset value)."""
    values = flat_values(cfg)
    return {
        spec.name: spec.unset if values[spec.name] is None else values[spec.name]
        for spec in config_params(type(cfg))
    }


def flat_values(cfg: Any) -> dict[str, Any]:
    """A config instance as ``{flat key: value}`` (None kept)."""
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cfg):
        value = getattr(cfg, item.name)
        if dataclasses.is_dataclass(value):
            values.update({f"{item.name}_{k}": v for k, v in flat_values(value).items()})
        else:
            values[item.name] = value
    return values


def config_from_params(config_class: type[T], values: Mapping[str, Any]) -> T:
    """Rebuild a config from flat values (a subset is fine: the rest keep their defaults).

    An optional setting given as its unset value (``""``, ``0``) becomes None; unknown keys
    are a ConfigError, and the config's own validation runs as usual.
    """
    specs = {spec.name: spec for spec in config_params(config_class)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"unknown {config_class.__name__} settings: {', '.join(unknown)}")
    restored = {
        name: None if specs[name].optional and value == specs[name].unset else value
        for name, value in values.items()
    }
    return _build(config_class, restored, prefix="")


def _build(config_class: type[T], values: Mapping[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(config_class)
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(config_class):  # type: ignore[arg-type]
        annotation = hints[item.name]
        if dataclasses.is_dataclass(annotation):
            kwargs[item.name] = _build(annotation, values, f"{prefix}{item.name}_")  # type: ignore[arg-type]
        elif prefix + item.name in values:
            kwargs[item.name] = values[prefix + item.name]
    try:
        return config_class(**kwargs)
    except TypeError as exc:  # a value of the wrong type reached a comparison
        raise ConfigError(f"invalid {config_class.__name__}: {exc}") from None


def _coerce(raw: str, current: Any, annotation: str = "") -> Any:
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    # The annotation decides when the current value (None) says nothing about the type.
    kinds = {k for k in ("bool", "int", "float") if k in annotation.replace(" ", "").split("|")}
    if current is None and kinds:
        current = {"bool": False, "int": 0, "float": 0.0}[sorted(kinds)[0]]
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text


def apply_overrides(
    values: Mapping[str, Any], overrides: Iterable[str], types: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``KEY=VALUE`` strings onto a flat config dict, typed like the field (or current value).

    ``types`` maps a key to its type as text (``"int | None"``) for fields whose current value
    (None) says nothing about the type.
    """
    result = dict(values)
    types = types or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in result:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(sorted(result))}")
        try:
            result[key] = _coerce(raw, result[key], types.get(key, ""))
        except ValueError as exc:
            raise ConfigError(f"--set {key}: {exc}") from None
    return result
