"""Write a use case's ``params.yaml`` from the core's config: every setting with its default or
the value given, so the DVC project restates no default.

    python write_params.py digits > params.yaml
    python write_params.py digits --set model=simple --set epochs=1 > params.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from mlopsbench.usecases.common.params import apply_overrides, flat_values
from mlopsbench.usecases.registry import get_usecase


def params_yaml(values: Mapping[str, Any]) -> str:
    """Flat settings as YAML, in the config's order (an unset optional setting is ``null``)."""
    return yaml.safe_dump(dict(values), sort_keys=False)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("usecase")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    case = get_usecase(args.usecase)
    types = {spec.name: f"{spec.kind.__name__} | None" for spec in case.params()}
    values = apply_overrides(flat_values(case.config()), args.set, types)
    sys.stdout.write(params_yaml(flat_values(case.config(values))))


if __name__ == "__main__":
    main(sys.argv[1:])
