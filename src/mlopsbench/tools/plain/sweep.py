"""The baseline's sweep: ``pipeline/sweep.py`` in this process (a process pool for workers > 1).

Plain keeps no store: the trials it "records" are ``trials.json`` in the run folder, so its
``stored_trials`` is what that file holds. Evidence is judged from the files, as for a run.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder
from mlopsbench.toolkit.sweep import sweep_record
from mlopsbench.tools.plain.adapter import evidence
from mlopsbench.tools.plain.pipeline.sweep import run_sweep
from mlopsbench.usecases.sweep.stages import TRIALS_FILE

__all__ = ["evidence", "run"]


def run(request: RunRequest) -> RunResult:
    recorder = RunRecorder("plain", request)
    outcome = run_sweep(request.config, request.out_dir)
    stored = json.loads((Path(request.out_dir) / TRIALS_FILE).read_text())
    return sweep_record(
        recorder,
        trials=outcome["trials"],
        evaluation=outcome["evaluation"],
        data=outcome["data"],
        stored_trials=len(stored),
        artifacts={"trials": str(Path(request.out_dir) / TRIALS_FILE)},
    )
