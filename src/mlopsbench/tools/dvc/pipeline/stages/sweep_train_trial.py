"""DVC stage ``train_trial`` of the sweep: one trial, the point params.yaml's ``trial:`` names.

    python stages/sweep_train_trial.py sweep <data file> <out dir>

Each trial is a DVC experiment (``dvc exp run --queue -S trial.model=deep ...``). The trial
trains in ``<out dir>/<trial name>/``; what the core returned goes to ``run_trial.json``, its
epochs and its test metrics to DVCLive (``dvclive/metrics.json``: what ``dvc exp show`` lists).
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
    settings = dvc.api.params_show()
    trial = settings.pop("trial")
    cfg = case.config(settings)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    result = case.stages.run_trial(cfg, data_path, trial, out_dir)
    Path(out_dir, "run_trial.json").write_text(json.dumps(result, indent=2))
    # dvc.yaml declares DVCLive's metrics and plots, and `dvc exp run` saves experiments.
    with Live(dvcyaml=False, save_dvc_exp=False) as live:
        for row in result["history"]:
            live.step = int(row["epoch"])
            for name, value in row.items():
                if name != "epoch":
                    live.log_metric(name, value)
            live.next_step()
        live.summary.update(result["metrics"])  # the trial's test accuracy, loss, macro F1


if __name__ == "__main__":
    main(*sys.argv[1:])
