"""The sweep as file-level stages: what each tool's fan-out task and fan-in step call.

A tool's sweep pipeline is::

    data   = prepare_data(cfg, out_dir)                       # one task
    trials = plan_trials(cfg)                                 # the list the tool fans out over
    result = run_trial(cfg, data["data_path"], trial, out_dir)    # one parallel task per trial
    best   = select_best(results)                             # the fan-in
    report = evaluate_best(cfg, data["data_path"], best, out_dir)  # gate the best trial

Every trial trains with one thread and the same seed, so a trial's result does not depend on
how many trials run beside it: the best trial is the same on every tool and at any parallelism.
Trials run as threads of one process take turns (torch's random generator is process-wide):
only trials in separate processes run in parallel.
The plain baseline runs the same work through the use case's three uniform stages
(``build_model`` runs every trial, in a process pool when ``workers`` > 1).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlopsbench.result import write_json_atomic
from mlopsbench.usecases.common.usecase import TestInputs, timed_stage
from mlopsbench.usecases.digits import stages as digits
from mlopsbench.usecases.digits.config import DigitsConfig
from mlopsbench.usecases.sweep.config import SweepConfig

TRIALS_FILE = "trials.json"
# Trials a tool runs as threads of one process (ZenML's dynamic pipelines, thread-pool task
# runners) would share torch's process-wide random generator (weight init, dropout) and the
# intra-op thread setting: each would draw the others' numbers and results would depend on
# timing. One trial computes at a time per process; trials in separate processes (workers,
# pods, task processes) still run side by side.
_TRIAL_LOCK = threading.Lock()
TRIAL_KEYS = ("index", "name", "model", "lr", "batch_size")


def check_inputs(cfg: SweepConfig) -> None:
    digits.check_inputs(base_config(cfg))


def base_config(cfg: SweepConfig) -> DigitsConfig:
    """The digits config every trial starts from (data, epochs, seed, gate)."""
    return DigitsConfig(epochs=cfg.epochs, seed=cfg.seed, threshold=cfg.threshold, data=cfg.data)


def plan_trials(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The trials, as small JSON-able dicts (what a tool passes to each parallel task).

    ``random`` draws distinct points of the space with a generator seeded by ``sweep_seed``;
    ``grid`` takes the space in order. Both are the same on every tool and machine.
    """
    import numpy as np

    space = list(itertools.product(cfg.model_list, cfg.learning_rate_list, cfg.batch_size_list))
    if cfg.sampler == "grid":
        chosen = list(range(cfg.trials))
    else:
        rng = np.random.default_rng(cfg.sweep_seed)
        chosen = [int(i) for i in rng.choice(len(space), size=cfg.trials, replace=False)]
    return [
        {"index": n, "name": trial_name(n), "model": m, "lr": lr, "batch_size": bs}
        for n, (m, lr, bs) in enumerate(space[i] for i in chosen)
    ]


def trial_name(index: int) -> str:
    return f"trial-{index:02d}"


def trial_config(cfg: SweepConfig, trial: dict[str, Any]) -> DigitsConfig:
    """The digits config of one trial: the base config with the trial's point of the space."""
    return base_config(cfg).with_overrides(
        model=str(trial["model"]), lr=float(trial["lr"]), batch_size=int(trial["batch_size"])
    )


@timed_stage
def prepare_data(cfg: SweepConfig, out_dir: str | Path) -> dict[str, Any]:
    """Load the digits once for every trial (``data.npz``)."""
    return _untimed(digits.prepare_data(base_config(cfg), out_dir))


@timed_stage
def run_trial(
    cfg: SweepConfig, data_path: str | Path, trial: dict[str, Any], out_dir: str | Path
) -> dict[str, Any]:
    """Train and score one trial in ``<out_dir>/<trial name>/``; return its small record."""
    from mlopsbench.usecases.digits.data import DigitsData
    from mlopsbench.usecases.digits.evaluate import evaluate
    from mlopsbench.usecases.digits.storage import save_model
    from mlopsbench.usecases.digits.train import train

    trial = {key: trial[key] for key in TRIAL_KEYS}
    folder = Path(out_dir) / str(trial["name"])
    trial_cfg = trial_config(cfg, trial)
    data = DigitsData.load(data_path)
    with _TRIAL_LOCK, _one_thread():
        trained = train(trial_cfg, data)
        scored = evaluate(trained.model, data)
    model_dir = save_model(trained.model, trial_cfg.model, folder / digits.MODEL_DIR)
    history = trained.history_dicts()
    write_json_atomic(folder / digits.HISTORY_FILE, history)
    metrics = {"accuracy": scored.accuracy, "loss": scored.loss, **_macro_f1(scored.metrics())}
    write_json_atomic(folder / digits.METRICS_FILE, metrics)
    return {
        "trial": trial,
        "metrics": metrics,
        "model_dir": str(model_dir),
        "history_path": str(folder / digits.HISTORY_FILE),
        "history": history,
        "train_seconds": trained.seconds,
    }


def select_best(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fan-in: the most accurate trial (lower loss, then the earlier trial, break ties)."""
    if not results:
        from mlopsbench.errors import DataError

        raise DataError("the sweep has no trial results to choose from")
    return min(results, key=_rank)


def rank_trials(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trial results best first."""
    return sorted(results, key=_rank)


def _rank(result: dict[str, Any]) -> tuple[float, float, int]:
    metrics = result["metrics"]
    return (-float(metrics["accuracy"]), float(metrics["loss"]), int(result["trial"]["index"]))


@timed_stage
def evaluate_best(
    cfg: SweepConfig,
    data_path: str | Path,
    best: dict[str, Any],
    out_dir: str | Path,
    plots: bool = True,
    predictor: Any = None,
) -> dict[str, Any]:
    """Evaluate the best trial's model as a normal run evaluates its model, gate included."""
    evaluation = digits.evaluate_model(
        trial_config(cfg, best["trial"]),
        data_path,
        best["model_dir"],
        out_dir,
        plots=plots,
        history_path=best.get("history_path"),
        predictor=predictor,
    )
    return {**_untimed(evaluation), "best": best["trial"]}


def trial_table(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per trial, best first: what records and reports show."""
    return [
        {
            **result["trial"],
            "accuracy": float(result["metrics"]["accuracy"]),
            "loss": float(result["metrics"]["loss"]),
            "seconds": float(result.get("seconds", 0.0)),
        }
        for result in rank_trials(results)
    ]


def write_trials(results: Sequence[dict[str, Any]], out_dir: str | Path) -> Path:
    return write_json_atomic(Path(out_dir) / TRIALS_FILE, trial_table(results))


# ---------------------------------------------------------------------------------------------
# the use case's three uniform stages (the plain baseline, and any tool without a fan-out)
# ---------------------------------------------------------------------------------------------


@timed_stage
def build_model(
    cfg: SweepConfig, data_path: str | Path, out_dir: str | Path, show_progress: bool = False
) -> dict[str, Any]:
    """Every trial (``workers`` at a time, in worker processes), then the best one's model."""
    del show_progress  # trials are short; a bar per trial would only interleave
    trials = plan_trials(cfg)
    if cfg.workers > 1:
        results = _run_in_pool(cfg, data_path, trials, out_dir)
    else:
        results = [run_trial(cfg, data_path, trial, out_dir) for trial in trials]
    best = select_best(results)
    write_trials(results, out_dir)
    return {
        "model_dir": best["model_dir"],
        "model_name": best["trial"]["model"],
        "history_path": best["history_path"],
        "history": best["history"],
        "best": best["trial"],
        "trials": trial_table(results),
        "precision": "fp32",
        "device": "cpu",
    }


@timed_stage
def evaluate_model(
    cfg: SweepConfig,
    data_path: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    plots: bool = True,
    history_path: str | Path | None = None,
    predictor: Any = None,
) -> dict[str, Any]:
    """Score the chosen model with the sweep's gate (as the digits use case does)."""
    return _untimed(
        digits.evaluate_model(
            base_config(cfg),
            data_path,
            model_dir,
            out_dir,
            plots=plots,
            history_path=history_path,
            predictor=predictor,
        )
    )


def test_inputs(data_path: str | Path) -> TestInputs:
    return digits.test_inputs(data_path)


def make_plots(
    out_dir: str | Path, evaluation: dict[str, Any], history_path: str | Path | None
) -> dict[str, str]:
    return digits.make_plots(out_dir, evaluation, history_path)


def _run_in_pool(
    cfg: SweepConfig, data_path: str | Path, trials: list[dict[str, Any]], out_dir: str | Path
) -> list[dict[str, Any]]:
    """What a plain Python user does for parallel trials: a process pool (spawned: torch and
    fork do not mix)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=context) as pool:
        futures = [pool.submit(run_trial, cfg, data_path, t, out_dir) for t in trials]
        return [future.result() for future in futures]


@contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread per trial: parallel trials do not oversubscribe the cores, and a
    trial computes the same numbers whatever runs beside it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _macro_f1(metrics: dict[str, float]) -> dict[str, float]:
    return {"macro_f1": float(metrics["macro_f1"])} if "macro_f1" in metrics else {}


def _untimed(result: dict[str, Any]) -> dict[str, Any]:
    """A wrapped stage's result without its ``seconds`` (the caller times itself)."""
    return {k: v for k, v in result.items() if k != "seconds"}
