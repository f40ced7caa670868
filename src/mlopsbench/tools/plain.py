"""The baseline: the same pipeline as every tool (load -> train -> evaluate -> save), no tool.

Every tool's overhead is measured against this runner, so it does exactly the core's work and
nothing else: one process, the core's stage functions, a result record.
"""

from __future__ import annotations

from pathlib import Path

from mlopsbench.result import RunRequest, RunResult, StageTimer, environment_info, now_iso, peak_rss_mb


def run(request: RunRequest) -> RunResult:
    if request.usecase == "digits":
        return _run_digits(request)
    if request.usecase == "sentiment":
        return _run_sentiment(request)
    from mlopsbench.errors import ConfigError

    raise ConfigError(f"unknown use case {request.usecase!r}; choose digits or sentiment")


def _run_digits(request: RunRequest) -> RunResult:
    from mlopsbench.usecases.digits import stages

    cfg = request.config
    out = Path(request.out_dir)
    timer = StageTimer()
    started = now_iso()
    with timer.stage("data"):
        data = stages.prepare_data(cfg, out)
    with timer.stage("train"):
        trained = stages.train_model(cfg, data["data_path"], out, show_progress=request.show_progress)
    with timer.stage("evaluate"):
        evaluated = stages.evaluate_model(cfg, data["data_path"], trained["model_dir"], out)
    return RunResult(
        tool="plain",
        usecase="digits",
        model=cfg.model,
        params=cfg.to_dict(),
        metrics=evaluated["metrics"],
        artifacts={"model": trained["model_dir"], "data": data["data_path"], **evaluated["artifacts"]},
        timings=timer.timings,
        wall_time_s=timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status="ok" if evaluated["gate"]["passed"] else "gate_failed",
        error=None if evaluated["gate"]["passed"] else "quality gate failed",
        gate=evaluated["gate"],
        tool_info={"dataset": {k: v for k, v in data.items() if k != "data_path"},
                   "precision": trained["precision"], "device": trained["device"]},
        history=trained["history"],
        started_at=started,
        environment=environment_info(),
    )


def _run_sentiment(request: RunRequest) -> RunResult:
    from mlopsbench.usecases.sentiment import stages

    cfg = request.config
    out = Path(request.out_dir)
    timer = StageTimer()
    started = now_iso()
    with timer.stage("data"):
        data = stages.prepare_data(cfg, out)
    with timer.stage("model"):
        model = stages.prepare_model(cfg, out)
    with timer.stage("evaluate"):
        evaluated = stages.evaluate_model(cfg, data["data_path"], model["model_dir"], out)
    return RunResult(
        tool="plain",
        usecase="sentiment",
        model=model["model_name"],
        params=cfg.to_dict(),
        metrics=evaluated["metrics"],
        artifacts={"model": model["model_dir"], "data": data["data_path"], **evaluated["artifacts"]},
        timings=timer.timings,
        wall_time_s=timer.elapsed,
        peak_rss_mb=peak_rss_mb(),
        status="ok" if evaluated["gate"]["passed"] else "gate_failed",
        error=None if evaluated["gate"]["passed"] else "quality gate failed",
        gate=evaluated["gate"],
        tool_info={"dataset": {k: v for k, v in data.items() if k != "data_path"}},
        history=model.get("history", []),
        started_at=started,
        environment=environment_info(),
    )
