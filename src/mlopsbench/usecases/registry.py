"""The use cases every tool runs, by name."""

from __future__ import annotations

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.usecase import UseCase


def _all() -> dict[str, UseCase]:
    from mlopsbench.usecases.digits import USECASE as DIGITS
    from mlopsbench.usecases.sentiment import USECASE as SENTIMENT
    from mlopsbench.usecases.sweep import USECASE as SWEEP

    return {usecase.name: usecase for usecase in (DIGITS, SENTIMENT, SWEEP)}


# The paper's two pipelines (straight lines: data -> model -> evaluation -> gate). The sweep
# scenario is a use case too (``get_usecase("sweep")``, ``every_usecase()``), run through each
# tool's own fan-out.
USECASE_NAMES = ("digits", "sentiment")
SCENARIO_NAMES = ("sweep",)


def get_usecase(name: str) -> UseCase:
    """The descriptor of ``name``, or a one-line ConfigError listing the use cases."""
    usecases = _all()
    key = str(name).strip().lower()
    if key not in usecases:
        raise ConfigError(f"unknown use case {name!r}; choose one of: {', '.join(usecases)}")
    return usecases[key]


def all_usecases() -> tuple[UseCase, ...]:
    """The paper's use cases (every tool has a pipeline for each)."""
    return tuple(case for case in _all().values() if case.name in USECASE_NAMES)


def every_usecase() -> tuple[UseCase, ...]:
    """The paper's use cases and the scenarios (the sweep)."""
    return tuple(_all().values())
