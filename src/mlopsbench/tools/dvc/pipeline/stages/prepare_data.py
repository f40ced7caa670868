"""DVC stage ``prepare_data``: the use case's data as one file, and what the stage returned.

python stages/prepare_data.py <use case> <out dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dvc.api

from mlopsbench.usecases.registry import get_usecase


def main(usecase: str, out_dir: str) -> None:
    case = get_usecase(usecase)
    cfg = case.config(dvc.api.params_show())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    dataset = case.stages.prepare_data(cfg, out_dir)
    Path(out_dir, "prepare_data.json").write_text(json.dumps(dataset, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
