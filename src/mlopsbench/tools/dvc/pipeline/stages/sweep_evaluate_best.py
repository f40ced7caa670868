"""DVC stage ``evaluate`` of the sweep: metrics, gate and plots of the applied (best) trial.

    python stages/sweep_evaluate_best.py sweep <data report> <trial report> <out dir>

Run after ``dvc exp apply <best trial>``: the workspace then holds that trial's params and
``train/``. With ``$MLFLOW_TRACKING_URI`` set, the run is also logged to MLflow.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dvc.api

from mlopsbench.usecases.registry import get_usecase


def main(usecase: str, data_report: str, trial_report: str, out_dir: str) -> None:
    case = get_usecase(usecase)
    settings = dvc.api.params_show()
    settings.pop("trial", None)  # the trial's point is in its report
    cfg = case.config(settings)
    dataset = json.loads(Path(data_report).read_text())
    best = json.loads(Path(trial_report).read_text())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    evaluation = case.stages.evaluate_best(cfg, dataset["data_path"], best, out_dir)
    Path(out_dir, "evaluate_model.json").write_text(json.dumps(evaluation, indent=2))
    if os.environ.get("MLFLOW_TRACKING_URI"):
        from mlopsbench.tracking import log_stages_to_mlflow

        logged = log_stages_to_mlflow(
            os.environ["MLFLOW_TRACKING_URI"],
            tool="dvc",
            usecase=usecase,
            run_name=f"dvc-{usecase}-{best['trial']['name']}",
            config=cfg,
            data=dataset,
            model=best,
            evaluation=evaluation,
            tags={"dvc.stage": "evaluate", "sweep.best": best["trial"]["name"]},
        )
        Path(out_dir, "mlflow.json").write_text(json.dumps(logged, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
