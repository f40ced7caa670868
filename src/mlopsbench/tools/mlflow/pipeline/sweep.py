"""The MLflow sweep: one parent run, one nested run per trial, the best trial's model
registered, scored once and made ``champion`` only if it passes.

    python -m mlopsbench.tools.mlflow.pipeline.sweep --trials 4 --workers 2 \\
        --tracking-uri sqlite:///runs/mlflow/mlflow.db

MLflow tracks a hyper-parameter search; it does not run one. It has no scheduler, executor or
worker pool of its own (MLflow Projects runs one entry point per ``mlflow run``), so trials run
``workers`` at a time in a plain ``concurrent.futures`` process pool (spawned: torch and fork do
not mix), as MLflow's own hyper-parameter examples do with a loop or another library. What
MLflow gives the sweep is its record: each spawned trial opens its own run under the parent
with ``mlflow.start_run(parent_run_id=...)`` against the same tracking URI, so the store groups
every trial under the ``sweep`` run (``tags.mlflow.parentRunId``) with its params, per-epoch
metrics and final metrics. The best trial's model is then logged to the parent run as the
existing pipeline logs models (models from code + safetensors weights), registered, loaded
back, scored once, gated and promoted.
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import mlflow

from mlopsbench import tracking
from mlopsbench.tools.mlflow.pipeline.run_pipeline import (
    load_version,
    log_model,
    promote_if_passed,
    register_version,
    validate,
)
from mlopsbench.usecases.arguments import add_settings, config_from_args
from mlopsbench.usecases.registry import get_usecase
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

SWEEP = "sweep"  # the use case, and the parent run's name
TRIAL_MODELS = "digits"  # every trial trains a digits classifier: its model is served as one


def run_sweep(
    cfg: SweepConfig,
    out_dir: str | Path,
    tracking_uri: str,
    *,
    run_name: str = SWEEP,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The parent run: data, the trials as nested runs, the best one logged, gated, promoted."""
    case = get_usecase(SWEEP)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(tracking.experiment_name(case.name))

    with mlflow.start_run(run_name=run_name, tags=tags) as parent:
        mlflow.log_params(cfg.to_dict())
        data = stages.prepare_data(cfg, out_dir)
        mlflow.log_input(tracking.core_dataset(case.name, data), context=case.data_context)

        where = {"tracking_uri": tracking_uri, "experiment_id": experiment.experiment_id}
        trials = run_trials(cfg, data["data_path"], out_dir, parent.info.run_id, where)
        mlflow.log_artifact(str(stages.write_trials(trials, out_dir)))
        best = stages.select_best(trials)
        mlflow.set_tags({"best_trial": best["trial"]["name"], "best_run_id": best["run_id"]})

        served = get_usecase(TRIAL_MODELS)
        best_cfg = stages.trial_config(cfg, best["trial"])
        model_info = log_model(served, best_cfg, best["model_dir"], data["data_path"])
        version = register_version(model_info, f"{case.name}-{served.name}")
        registered = load_version(version)
        evaluation = stages.evaluate_best(
            cfg, data["data_path"], best, out_dir, predictor=registered
        )
        mlflow.log_metrics(evaluation["metrics"])
        for path in evaluation["artifacts"].values():
            mlflow.log_artifact(path, artifact_path=tracking.artifact_folder(path))

        validation = validate(version, evaluation["metrics"]["accuracy"], cfg.threshold)
        promotion = promote_if_passed(version, validation["gate"])
        mlflow.set_tag("validation_status", promotion["validation_status"])

    return {
        "run_id": parent.info.run_id,
        "experiment_id": parent.info.experiment_id,
        "data": data,
        "trials": trials,
        "evaluation": evaluation,
        "logged_model_uri": model_info.model_uri,
        "version": version,
        "validation": validation,
        "promotion": promotion,
    }


def run_trials(
    cfg: SweepConfig,
    data_path: str,
    out_dir: str | Path,
    parent_run_id: str,
    where: dict[str, str],
) -> list[dict[str, Any]]:
    """Every planned trial, ``cfg.workers`` at a time (MLflow has no scheduler: a pool)."""
    planned = stages.plan_trials(cfg)
    args = (cfg, data_path, out_dir, parent_run_id, where)
    if cfg.workers == 1:  # in this process, under the active parent run
        return [run_trial(trial, *args) for trial in planned]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=spawn) as pool:
        futures = [pool.submit(run_trial, trial, *args) for trial in planned]
        try:
            return [future.result() for future in futures]
        except BaseException:  # one failed trial fails the sweep: queued trials never start
            pool.shutdown(cancel_futures=True)
            raise


def run_trial(
    trial: dict[str, Any],
    cfg: SweepConfig,
    data_path: str,
    out_dir: str | Path,
    parent_run_id: str,
    where: dict[str, str],
) -> dict[str, Any]:
    """One trial as a nested run of the sweep (in whichever process runs it)."""
    mlflow.set_tracking_uri(where["tracking_uri"])
    with mlflow.start_run(
        experiment_id=where["experiment_id"],
        run_name=trial["name"],
        parent_run_id=parent_run_id,
        nested=True,
    ) as run:
        mlflow.log_params(trial)
        result = stages.run_trial(cfg, data_path, trial, out_dir)
        for row in result["history"]:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        mlflow.log_metrics(result["metrics"])
    return {**result, "run_id": run.info.run_id}


def argument_parser() -> argparse.ArgumentParser:
    """The script's options: its own, then every setting of the core's ``SweepConfig``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mlflow-sweep"))
    parser.add_argument("--tracking-uri", default=mlflow.get_tracking_uri())
    add_settings(parser, SWEEP)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = argument_parser().parse_args(argv)
    cfg = config_from_args(SWEEP, args)
    args.out.mkdir(parents=True, exist_ok=True)
    outcome = run_sweep(cfg, args.out, args.tracking_uri)
    best, version = outcome["evaluation"]["best"], outcome["version"]
    print(
        f"run {outcome['run_id']}: best {best['name']} ({best['model']}, lr {best['lr']}, "
        f"batch {best['batch_size']}) as {version.name} version {version.version}, "
        f"{outcome['promotion']['validation_status']}"
    )


if __name__ == "__main__":
    main()
