"""DVC stage ``train`` (digits) / ``build_model`` (sentiment): the model, its epochs in DVCLive.

    python stages/build_model.py <use case> <data file> <out dir>

The core trains in one call and returns one history row per epoch, so DVCLive logs those rows
once training is done, one step per epoch (``dvclive/metrics.json``, ``dvclive/plots/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dvc.api
from dvclive import Live

from mlopsbench.usecases.registry import get_usecase


def main(usecase: str, data_path: str, out_dir: str) -> None:
    case = get_usecase(usecase)
    cfg = case.config(dvc.api.params_show())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model = case.stages.build_model(cfg, data_path, out_dir)
    Path(out_dir, "build_model.json").write_text(json.dumps(model, indent=2))
    # dvc.yaml declares DVCLive's metrics and plots, and `dvc exp run` saves experiments.
    with Live(dvcyaml=False, save_dvc_exp=False) as live:
        for row in model["history"]:
            live.step = int(row["epoch"])
            for name, value in row.items():
                if name != "epoch":
                    live.log_metric(name, value)
            live.next_step()


if __name__ == "__main__":
    main(*sys.argv[1:])
