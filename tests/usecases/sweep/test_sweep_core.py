"""The sweep core: one config, the same trials everywhere, the best trial whatever the
parallelism, and one-line errors for a space that cannot hold the trials asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.registry import all_usecases, every_usecase, get_usecase
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

SMALL = {"trials": 4, "models": "simple,deep", "epochs": 1}


def small(**changes: object) -> SweepConfig:
    return SweepConfig(**{**SMALL, **changes})  # type: ignore[arg-type]


def test_the_sweep_is_a_use_case_beside_the_papers_two() -> None:
    assert [u.name for u in all_usecases()] == ["digits", "sentiment"]
    assert "sweep" in [u.name for u in every_usecase()]
    case = get_usecase("sweep")
    names = {spec.name for spec in case.params()}
    assert {"trials", "sweep_seed", "models", "learning_rates", "workers", "data_source"} <= names
    assert case.run_axis == "workers"
    assert case.config({"workers": 2}).model_label == "8x-w2"


def test_random_trials_are_distinct_seeded_and_from_the_space() -> None:
    cfg = SweepConfig()
    first, again = stages.plan_trials(cfg), stages.plan_trials(cfg)
    assert first == again  # the same trials on every tool and machine
    points = {(t["model"], t["lr"], t["batch_size"]) for t in first}
    assert len(points) == cfg.trials
    assert all(t["model"] in cfg.model_list for t in first)
    assert [t["name"] for t in first] == [f"trial-{i:02d}" for i in range(cfg.trials)]
    other = stages.plan_trials(cfg.with_overrides(sweep_seed=1))
    assert other != first


def test_grid_takes_the_space_in_order() -> None:
    cfg = SweepConfig(
        sampler="grid", trials=3, models="simple", learning_rates="0.1,0.2,0.3", batch_sizes="64"
    )
    assert [t["lr"] for t in stages.plan_trials(cfg)] == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trials": 40}, "exceed the 36 distinct points"),
        ({"trials": 0}, "trials must be in"),
        ({"models": "simple,transformer"}, "unknown model"),
        ({"learning_rates": "0.1,fast"}, "comma-separated floats"),
        ({"learning_rates": "0.1,0.1"}, "lists a value twice"),
        ({"batch_sizes": "0"}, "batch sizes must be >= 1"),
        ({"batch_sizes": " , "}, "at least one value"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"sampler": "bayes"}, "unknown sampler"),
    ],
)
def test_bad_sweep_settings_are_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**changes)


def test_best_is_the_most_accurate_then_lowest_loss_then_first() -> None:
    def result(index: int, accuracy: float, loss: float) -> dict:
        return {"trial": {"index": index}, "metrics": {"accuracy": accuracy, "loss": loss}}

    results = [
        result(0, 0.9, 0.3),
        result(1, 0.95, 0.5),
        result(2, 0.95, 0.2),
        result(3, 0.95, 0.2),
    ]
    assert stages.select_best(results)["trial"]["index"] == 2
    assert [r["trial"]["index"] for r in stages.rank_trials(results)] == [2, 3, 1, 0]
    with pytest.raises(Exception, match="no trial results"):
        stages.select_best([])


def test_a_trial_gives_the_same_numbers_alone_or_beside_others(tmp_path: Path) -> None:
    """Trials train with one thread, so parallel and sequential sweeps agree (best included)."""
    sequential, parallel = small(workers=1), small(workers=2)
    data = stages.prepare_data(sequential, tmp_path / "one")
    one = stages.build_model(sequential, data["data_path"], tmp_path / "one")
    two = stages.build_model(parallel, data["data_path"], tmp_path / "two")
    assert one["best"] == two["best"]
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in one["trials"]]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in two["trials"]]
    assert len(one["trials"]) == 4
    assert (tmp_path / "one" / stages.TRIALS_FILE).is_file()
    evaluation = stages.evaluate_model(
        sequential, data["data_path"], one["model_dir"], tmp_path / "one", plots=False
    )
    assert evaluation["metrics"]["accuracy"] == pytest.approx(one["trials"][0]["accuracy"])
    assert evaluation["gate"]["threshold"] == sequential.threshold


def test_evaluate_best_gates_the_best_trial(tmp_path: Path) -> None:
    cfg = small(trials=2, models="simple", threshold=1.0)
    data = stages.prepare_data(cfg, tmp_path)
    results = [
        stages.run_trial(cfg, data["data_path"], t, tmp_path) for t in stages.plan_trials(cfg)
    ]
    best = stages.select_best(results)
    report = stages.evaluate_best(cfg, data["data_path"], best, tmp_path, plots=False)
    assert report["best"] == best["trial"]
    assert report["gate"]["passed"] is False  # nothing reaches 100 %: a valid, gated result
    assert Path(best["model_dir"]).parent.name == best["trial"]["name"]


def test_trials_in_threads_of_one_process_get_the_numbers_they_get_alone(tmp_path: Path) -> None:
    """Thread-based fan-outs (ZenML dynamic pipelines, thread-pool task runners) share torch's
    process-wide generator: the core makes such trials take turns, so results do not change."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = small(trials=2, models="deep")  # dropout draws from the generator on every batch
    data = stages.prepare_data(cfg, tmp_path)
    trials = stages.plan_trials(cfg)
    alone = [stages.run_trial(cfg, data["data_path"], t, tmp_path / "alone") for t in trials]
    with ThreadPoolExecutor(max_workers=2) as pool:
        threads = list(
            pool.map(lambda t: stages.run_trial(cfg, data["data_path"], t, tmp_path / "t"), trials)
        )
    assert [r["metrics"] for r in threads] == [r["metrics"] for r in alone]
