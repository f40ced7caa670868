"""DVC stage ``prepare_data`` of the sweep: the digits as one file, loaded once for all trials.

    python stages/sweep_prepare_data.py sweep <out dir>

params.yaml holds the sweep's settings and the ``trial:`` block each experiment sets; this
stage reads the settings only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dvc.api

from mlopsbench.usecases.registry import get_usecase


def main(usecase: str, out_dir: str) -> None:
    case = get_usecase(usecase)
    settings = dvc.api.params_show()
    settings.pop("trial", None)  # the experiment's point of the space, not a setting
    cfg = case.config(settings)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    dataset = case.stages.prepare_data(cfg, out_dir)
    Path(out_dir, "prepare_data.json").write_text(json.dumps(dataset, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
