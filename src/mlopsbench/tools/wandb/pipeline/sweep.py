"""A hyper-parameter sweep tracked by Weights & Biases, offline: one W&B run per trial, grouped.

    export WANDB_MODE=offline
    python -m mlopsbench.tools.wandb.pipeline.sweep --trials 4 --workers 2
    wandb leet wandb/latest-run       # the last run (the sweep's evaluation), in the terminal

W&B's own sweeps (``wandb.sweep`` + ``wandb.agent``, or the local controller of
``wandb.controller()`` / ``wandb sweep --controller``) need the W&B server: ``wandb.sweep``
creates the sweep with the server's ``upsertSweep`` call (offline it stops at "No API key
configured"), the agent asks the server for each trial's parameters, and even the local
controller only writes its schedule into the server's sweep object, which the server turns into
runs. Neither runs with no server, so this script does what W&B documents for related runs
without one: one offline run per trial, all in one ``group`` (the sweep's id) with
``job_type="trial"`` and the trial as the run's ``config``. W&B has no executor either: trials
run ``workers`` at a time in a plain ``concurrent.futures`` process pool (spawned: torch and fork
do not mix), each trial's body one call into the core. The best trial is then evaluated in one
more run of the group (``job_type="evaluate"``) that logs the dataset, the scores, the plots and
the best model as an artifact: every model a ``candidate``, ``champion`` only past the gate, as
``train.py`` does.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import wandb

from mlopsbench.tools.wandb.pipeline.train import (
    CANDIDATE,
    CHAMPION,
    dataset_artifact,
    model_artifact,
    per_class_table,
    plot_images,
    use_dataset,
)
from mlopsbench.usecases.arguments import add_settings, config_from_args
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

SWEEP = "sweep"  # the use case
TRIAL = "trial"  # job_type of a trial's run
EVALUATE = "evaluate"  # job_type of the run that evaluates and logs the best trial


def run_sweep(cfg: SweepConfig, out_dir: str | Path) -> dict[str, Any]:
    """Every trial as a run of the sweep's group, then the best one evaluated in one more."""
    group = f"{SWEEP}-{secrets.token_hex(4)}"  # the sweep's id (no server to issue one)
    where = {"project": f"mlopsbench-{SWEEP}", "group": group}
    data = stages.prepare_data(cfg, out_dir)
    trials = run_trials(cfg, data["data_path"], out_dir, where)
    run_id, evaluation = evaluate_best(cfg, data, trials, out_dir, where)
    return {"group": group, "run_id": run_id, "data": data, "trials": trials, **evaluation}


def evaluate_best(
    cfg: SweepConfig,
    data: dict[str, Any],
    trials: list[dict[str, Any]],
    out_dir: str | Path,
    where: dict[str, str],
) -> tuple[str, dict[str, Any]]:
    """The best trial scored and gated in the group's ``evaluate`` run, as ``train.py`` logs a
    model: the dataset, the scores, the plots, the model artifact and its aliases."""
    best = stages.select_best(trials)
    with wandb.init(**where, job_type=EVALUATE, config=flat_values(cfg), tags=[SWEEP]) as run:
        dataset = use_dataset(run, dataset_artifact(SWEEP, data))
        evaluation = stages.evaluate_best(cfg, data["data_path"], best, out_dir)
        run.summary.update(evaluation["metrics"])
        run.summary["evaluation"] = {
            k: v for k, v in evaluation.items() if k not in ("metrics", "confusion", "artifacts")
        }
        run.log(
            {
                "trials": trials_table(trials),
                "per_class": per_class_table(evaluation),
                **plot_images(evaluation),
            }
        )
        passed = evaluation["gate"]["passed"]
        artifact = model_artifact(f"{SWEEP}-best", best, dataset)
        run.log_artifact(artifact, aliases=["latest", CANDIDATE, *([CHAMPION] if passed else [])])
        run.tags = (*run.tags, "gate-passed" if passed else "gate-failed")
    return run.id, {"evaluation": evaluation}


def run_trials(
    cfg: SweepConfig, data_path: str, out_dir: str | Path, where: dict[str, str]
) -> list[dict[str, Any]]:
    """Every planned trial, ``cfg.workers`` at a time (W&B has no executor offline: a pool)."""
    planned = stages.plan_trials(cfg)
    if cfg.workers == 1:
        return [run_trial(trial, cfg, data_path, out_dir, where) for trial in planned]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=spawn) as pool:
        futures = [
            pool.submit(run_trial, trial, cfg, data_path, out_dir, where) for trial in planned
        ]
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
    where: dict[str, str],
) -> dict[str, Any]:
    """One trial as one offline run of the sweep's group (in whichever process runs it)."""
    # ``with``: a failed trial's run ends failed (exit code 1) though its worker lives on
    with wandb.init(**where, job_type=TRIAL, name=trial["name"], config=trial) as run:
        result = stages.run_trial(cfg, data_path, dict(run.config), out_dir)
        for row in result["history"]:
            run.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        run.summary.update(result["metrics"])
    return {**result, "run_id": run.id}


def trials_table(trials: list[dict[str, Any]]) -> wandb.Table:
    """Every trial's point of the space and scores, best first."""
    rows = stages.trial_table(trials)
    return wandb.Table(columns=list(rows[0]), data=[list(row.values()) for row in rows])


def argument_parser() -> argparse.ArgumentParser:
    """The script's options: its own, then every setting of the core's ``SweepConfig``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/wandb-sweep"))
    add_settings(parser, SWEEP)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = argument_parser().parse_args(argv)
    cfg = config_from_args(SWEEP, args)
    args.out.mkdir(parents=True, exist_ok=True)
    outcome = run_sweep(cfg, args.out)
    best, gate = outcome["evaluation"]["best"], outcome["evaluation"]["gate"]
    print(
        f"W&B group {outcome['group']}: best {best['name']} ({best['model']}, lr {best['lr']}, "
        f"batch {best['batch_size']}), accuracy {gate['value']:.4f}, "
        f"{CHAMPION if gate['passed'] else 'candidate only (below the gate)'}"
    )


if __name__ == "__main__":
    main()
