"""DVC stage ``evaluate``: metrics, gate and plots of the model the previous stage reported.

    python stages/evaluate.py <use case> <data report> <model report> <out dir>

With ``$MLFLOW_TRACKING_URI`` set, the run is also logged to MLflow.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dvc.api

from mlopsbench.usecases.registry import get_usecase


def main(usecase: str, data_report: str, model_report: str, out_dir: str) -> None:
    case = get_usecase(usecase)
    cfg = case.config(dvc.api.params_show())
    dataset = json.loads(Path(data_report).read_text())
    model = json.loads(Path(model_report).read_text())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    evaluation = case.stages.evaluate_model(
        cfg, dataset["data_path"], model["model_dir"], out_dir, history_path=model["history_path"]
    )
    Path(out_dir, "evaluate_model.json").write_text(json.dumps(evaluation, indent=2))
    if os.environ.get("MLFLOW_TRACKING_URI"):
        from mlopsbench.tracking import log_stages_to_mlflow

        logged = log_stages_to_mlflow(
            os.environ["MLFLOW_TRACKING_URI"],
            tool="dvc",
            usecase=usecase,
            run_name=f"dvc-{usecase}-{Path.cwd().name}",
            config=cfg,
            data=dataset,
            model=model,
            evaluation=evaluation,
            tags={"dvc.stage": "evaluate"},
        )
        Path(out_dir, "mlflow.json").write_text(json.dumps(logged, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])
