"""Use-case configs as plain dicts: what the parent writes into each worker request.

The parent builds and validates the config once (so a bad option fails before any run starts),
then every tool's worker rebuilds the identical frozen config from the same dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.result import USECASES


def check_usecase(usecase: str) -> str:
    key = usecase.strip().lower()
    if key not in USECASES:
        raise ConfigError(f"unknown use case {usecase!r}; choose one of: {', '.join(USECASES)}")
    return key


def build_config(usecase: str, values: Mapping[str, Any]) -> Any:
    """The frozen config object of ``usecase`` from its flat ``to_dict()`` form."""
    usecase = check_usecase(usecase)
    if usecase == "digits":
        from mlopsbench.usecases.digits.config import DigitsConfig

        return DigitsConfig.from_dict(dict(values))
    try:
        from mlopsbench.usecases.sentiment.config import SentimentConfig
    except ImportError:
        raise ConfigError("the sentiment use case is not available in this install") from None
    try:
        return SentimentConfig.from_dict(dict(values))
    except TypeError as exc:
        raise ConfigError(f"invalid sentiment config: {exc}") from None


def base_config(usecase: str, **fields: Any) -> dict[str, Any]:
    """Default config of ``usecase`` with ``fields`` set (None values keep the default)."""
    usecase = check_usecase(usecase)
    chosen = {k: v for k, v in fields.items() if v is not None}
    if usecase == "digits":
        from mlopsbench.usecases.digits.config import DigitsConfig

        values = DigitsConfig().to_dict()
        unknown = set(chosen) - set(values)
        if unknown:
            raise ConfigError(f"unknown {usecase} config keys: {', '.join(sorted(unknown))}")
        return {**values, **chosen}
    # Build from the chosen fields: some defaults follow others (smoke -> the fixture source).
    return dict(build_config("sentiment", chosen).to_dict())


def field_types(usecase: str) -> dict[str, str]:
    """Flat config key -> its annotation as text (``"int | None"``), from the dataclasses."""
    from dataclasses import fields

    if check_usecase(usecase) == "digits":
        from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

        flat = {f.name: str(f.type) for f in fields(DigitsConfig) if f.name != "data"}
        flat.update({f"data_{f.name}": str(f.type) for f in fields(DigitsDataConfig)})
        return flat
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    return {f.name: str(f.type) for f in fields(SentimentConfig)}


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
    """``KEY=VALUE`` strings onto a flat config dict, typed like the field (or current value)."""
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


def absolutize_paths(values: Mapping[str, Any]) -> dict[str, Any]:
    """Workers run with their run folder as cwd: make local data/model paths absolute."""
    result = dict(values)
    for key in ("data_path", "model_path"):
        if isinstance(result.get(key), str) and result[key]:
            result[key] = str(Path(result[key]).expanduser().resolve())
    return result
