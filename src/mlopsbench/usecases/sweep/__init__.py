"""Sweep scenario: N digits trials fanned out by each tool, the best one evaluated and gated.

No MLOps tool is imported here. A tool's sweep pipeline calls :mod:`.stages`: ``plan_trials``
(the trials, one per parallel task), ``run_trial`` (one call per task), ``select_best`` (the
fan-in) and ``evaluate_best``. The plain baseline runs the same work through the use case's
three uniform stages.
"""

from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.sweep.config import SweepConfig

USECASE = UseCase(
    name="sweep",
    title="Sweep (hyper-parameter search over the digits classifier)",
    config_class=SweepConfig,
    stages_module="mlopsbench.usecases.sweep.stages",
    model_stage="trials",
    labels=tuple(str(d) for d in range(10)),
    input_kind="images",
    data_context="training",
    data_file="data.npz",
    default_threshold=SweepConfig().threshold,
    run_axis="workers",  # compare sweep: the same sweep at 1 and 2 parallel trials
)
