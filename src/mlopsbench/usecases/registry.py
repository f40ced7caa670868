"""The use cases every tool runs, by name."""

from __future__ import annotations

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.usecase import UseCase


def _all() -> dict[str, UseCase]:
    from mlopsbench.usecases.digits import USECASE as DIGITS
    from mlopsbench.usecases.sentiment import USECASE as SENTIMENT

    return {usecase.name: usecase for usecase in (DIGITS, SENTIMENT)}


USECASE_NAMES = ("digits", "sentiment")


def get_usecase(name: str) -> UseCase:
    """The descriptor of ``name``, or a one-line ConfigError listing the use cases."""
    usecases = _all()
    key = str(name).strip().lower()
    if key not in usecases:
        raise ConfigError(f"unknown use case {name!r}; choose one of: {', '.join(usecases)}")
    return usecases[key]


def all_usecases() -> tuple[UseCase, ...]:
    return tuple(_all().values())
