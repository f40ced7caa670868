"""The sweep with no MLOps tool: a process pool over the trials, then the best one gated.

::

    python -m mlopsbench.tools.plain.pipeline.sweep runs/plain-sweep --workers 2

What a Python user writes without an orchestrator (``concurrent.futures``); every tool's sweep
does this same work, and its overhead per trial is measured against this script's.
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig


def run_sweep(cfg: SweepConfig, out_dir: str | Path) -> dict[str, Any]:
    """Data once, every trial (``cfg.workers`` at a time), the best trial evaluated."""
    data = stages.prepare_data(cfg, out_dir)
    trials = stages.plan_trials(cfg)
    if cfg.workers == 1:
        results = [stages.run_trial(cfg, data["data_path"], t, out_dir) for t in trials]
    else:  # spawned workers: torch and fork do not mix
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=spawn) as pool:
            futures = [
                pool.submit(stages.run_trial, cfg, data["data_path"], t, out_dir) for t in trials
            ]
            results = [future.result() for future in futures]
    stages.write_trials(results, out_dir)
    best = stages.select_best(results)
    evaluation = stages.evaluate_best(cfg, data["data_path"], best, out_dir)
    return {"data": data, "trials": results, "evaluation": evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--workers", type=int, default=SweepConfig().workers)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    outcome = run_sweep(SweepConfig(workers=args.workers), args.out_dir)
    best = outcome["evaluation"]["best"]
    print(
        f"best {best['name']} ({best['model']}, lr {best['lr']}, batch {best['batch_size']}): "
        f"accuracy {outcome['evaluation']['metrics']['accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
