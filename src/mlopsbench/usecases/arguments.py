"""A plain script's command line from the use cases: ``script.py digits --epochs 3 ...``.

For pipelines that are ordinary Python scripts (MLflow's, W&B's): one sub-command per use case,
its options made from that use case's config dataclasses, so defaults and help have one source.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from mlopsbench.usecases.common.params import ParamSpec
from mlopsbench.usecases.registry import all_usecases, get_usecase


def usecase_parser(
    description: str, add_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """One sub-command per use case; ``add_options`` adds the script's own options to each."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="usecase", required=True)
    for case in all_usecases():
        options = commands.add_parser(case.name, help=case.title)
        add_options(options)
        add_settings(options, case.name)
    return parser


def add_settings(parser: argparse.ArgumentParser, usecase: str) -> None:
    """One option per setting of ``usecase``'s config (``--epochs``, ``--data-path``...)."""
    for spec in get_usecase(usecase).params():
        _add_setting(parser, spec)


def config_from_args(usecase: str, args: argparse.Namespace) -> Any:
    """The use case's config from options added by :func:`add_settings`."""
    case = get_usecase(usecase)
    return case.config({spec.name: getattr(args, spec.name) for spec in case.params()})


def parse_usecase_args(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> tuple[Any, Any, argparse.Namespace]:
    """(use case, its config, all parsed options) from the command line."""
    args = parser.parse_args(argv)
    case = get_usecase(args.usecase)
    values = {spec.name: getattr(args, spec.name) for spec in case.params()}
    return case, case.config(values), args


def _add_setting(options: argparse.ArgumentParser, spec: ParamSpec) -> None:
    kind: dict[str, Any] = (
        {"action": argparse.BooleanOptionalAction}
        if spec.kind is bool
        else {"type": spec.kind, "choices": spec.choices or None}
    )
    options.add_argument(
        spec.cli_flag, dest=spec.name, default=spec.default, help=spec.description, **kind
    )
