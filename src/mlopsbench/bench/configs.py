"""Use-case configs as plain dicts: what the parent writes into each worker request.

The parent builds and validates the config once (so a bad option fails before any run starts),
then every tool's worker rebuilds the identical frozen config from the same dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlopsbench.usecases.common import params
from mlopsbench.usecases.registry import get_usecase


def check_usecase(usecase: str) -> str:
    return get_usecase(usecase).name


def build_config(usecase: str, values: Mapping[str, Any]) -> Any:
    """The frozen config object of ``usecase`` from its flat ``to_dict()`` form."""
    return get_usecase(usecase).config(dict(values))


def base_config(usecase: str, **fields: Any) -> dict[str, Any]:
    """Default config of ``usecase`` with ``fields`` set (None values keep the default).

    Built through the config class: some defaults follow others (``smoke`` -> the fixture).
    """
    chosen = {k: v for k, v in fields.items() if v is not None}
    return dict(build_config(usecase, chosen).to_dict())


def field_types(usecase: str) -> dict[str, str]:
    """Flat config key -> its type as text (``"int | None"``), from the config dataclass."""
    return {
        spec.name: spec.kind.__name__ + (" | None" if spec.optional else "")
        for spec in get_usecase(usecase).params()
    }


def apply_overrides(
    values: Mapping[str, Any], overrides: Iterable[str], types: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``KEY=VALUE`` strings onto a flat config dict, typed like the field (or current value)."""
    return params.apply_overrides(values, overrides, types)


def absolutize_paths(values: Mapping[str, Any]) -> dict[str, Any]:
    """Workers run with their run folder as cwd: make local data/model paths absolute."""
    result = dict(values)
    for key in ("data_path", "model_path"):
        if isinstance(result.get(key), str) and result[key]:
            result[key] = str(Path(result[key]).expanduser().resolve())
    return result
