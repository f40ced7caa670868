"""The sweep scenario as a dynamic ZenML pipeline: N digits trials, the best one gated.

load_data + plan_trials -> run_trial.map(trials) -> select_best -> evaluate_best
-> [promote_best if the gate passed] [-> log_to_mlflow]. The pipeline is ``dynamic=True``:
its function runs while the pipeline runs, so ``run_trial.map`` fans out over the list that
``plan_trials`` returned (one ``run_trial`` step run per trial, however many the plan holds),
and the branch after the evaluation is taken on the loaded verdict. Run it like any ZenML
pipeline, on the active stack (the default one: a SQLite store and a local artifact store)::

    export ZENML_ANALYTICS_OPT_IN=false
    ZENML_DYNAMIC_PIPELINE_WORKER_COUNT=2 \\
        python src/mlopsbench/tools/zenml/pipeline/sweep_pipeline.py trials=4 models=simple,deep

or from Python: ``run_pipeline(SweepConfig(trials=4))``. Through mlopsbench:
``mlopsbench run sweep --tool zenml --trials 4 --workers 2``.

On the local orchestrator the mapped steps run in the runner's thread pool, whose size is
``$ZENML_DYNAMIC_PIPELINE_WORKER_COUNT`` (ZenML's default: 10); the pipeline's ``workers``
parameter is not read by ZenML itself. The trials' results are artifacts (``trial_result``,
one version per trial, and the trial folder with its model); the best trial's model becomes the
model artifact of the run's version of the ``sweep-<trials>x-w<workers>`` model.
"""

import sys
from pathlib import Path
from typing import Annotated, Any

from zenml import ArtifactConfig, Model, get_step_context, log_metadata, pipeline, step, unmapped
from zenml.config import ResourceSettings
from zenml.config.retry_config import StepRetryConfig
from zenml.enums import ArtifactType, ModelStages
from zenml.models import PipelineRunResponse
from zenml.types import HTMLString

from mlopsbench.tools.zenml.pipeline.pipeline_helpers import (
    config_from_argv,
    config_parameters,
    dataset_metadata,
    folder_of,
    relocated,
    step_dir,
    tracking_uri,
)
from mlopsbench.tools.zenml.pipeline.report import evaluation_report
from mlopsbench.tools.zenml.pipeline.shared_steps import log_to_mlflow
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.digits.stages import DATA_FILE
from mlopsbench.usecases.sweep import USECASE, stages
from mlopsbench.usecases.sweep.config import SweepConfig

# What a trial's folder holds that the evaluation reads again (the trial is handed over whole).
TRIAL_FILES = ("model_dir", "history_path")


@step(retry=StepRetryConfig(max_retries=2))  # downloads (hf, torchvision) can fail transiently
def load_data(
    cfg: SweepConfig,
) -> tuple[Annotated[Path, "dataset"], Annotated[dict[str, Any], "data_info"]]:
    """Load the digits once for every trial; their source and digest describe the dataset."""
    prepared = stages.prepare_data(cfg, step_dir())
    log_metadata(dataset_metadata(prepared), artifact_name="dataset", infer_artifact=True)
    return folder_of(prepared, "data_path"), prepared


@step
def plan_trials(cfg: SweepConfig) -> Annotated[list[dict[str, Any]], "trials"]:
    """The points of the search space to try: the list the pipeline maps over."""
    return stages.plan_trials(cfg)


# A trial trains with one thread: what an orchestrator that places steps should reserve (the
# local orchestrator stores the request with the step and runs it inline regardless).
@step(
    retry=StepRetryConfig(max_retries=1, delay=1, backoff=2),  # a lost trial is re-run once
    settings={"resources": ResourceSettings(cpu_count=1, memory="1GB")},
)
def run_trial(
    cfg: SweepConfig, dataset: Path, trial: dict[str, Any]
) -> tuple[Annotated[Path, "trial_folder"], Annotated[dict[str, Any], "trial_result"]]:
    """Train and score one trial; its folder (model, history, metrics) is kept with it."""
    result = stages.run_trial(cfg, dataset / DATA_FILE, trial, step_dir())
    return folder_of(result, "history_path"), result


@step
def select_best(results: list[dict[str, Any]]) -> Annotated[dict[str, Any], "best_trial"]:
    """The fan-in: every trial's result, the most accurate one kept."""
    return stages.select_best(results)


@step(retry=StepRetryConfig(max_retries=1, delay=1, backoff=2))  # keep the trials' work
def evaluate_best(
    cfg: SweepConfig, dataset: Path, trial_folder: Path, best: dict[str, Any]
) -> tuple[
    Annotated[dict[str, Any], "evaluation"],
    Annotated[Path, ArtifactConfig(name="model", artifact_type=ArtifactType.MODEL)],
    Annotated[Path, "evaluation_files"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Evaluate the best trial's model as a run does; its metrics go to the model version."""
    here = {**best, **relocated({k: best[k] for k in TRIAL_FILES}, trial_folder)}
    evaluation = stages.evaluate_best(cfg, dataset / DATA_FILE, here, step_dir())
    log_metadata({"metrics": evaluation["metrics"], "gate": evaluation["gate"]}, infer_model=True)
    report = evaluation_report(f"sweep · best {best['trial']['name']}", evaluation)
    return evaluation, Path(here["model_dir"]), step_dir(), report


@step(enable_cache=False)  # a cached promotion would leave a new model version unpromoted
def promote_best(evaluation: dict[str, Any]) -> Annotated[dict[str, Any], "quality_gate"]:
    """The best trial passed the gate: this run's model version becomes the production one."""
    get_step_context().model.set_stage(ModelStages.PRODUCTION, force=True)
    return dict(evaluation["gate"])


@pipeline(dynamic=True)
@config_parameters(SweepConfig)
def sweep_pipeline(cfg: SweepConfig, mlflow_uri: str = "") -> None:
    """Train every planned trial, evaluate the best; promote its model version if accurate."""
    dataset, data_info = load_data(cfg)
    trials = plan_trials(cfg)
    folders, results = run_trial.map(
        cfg=unmapped(cfg), dataset=unmapped(dataset), trial=trials
    ).unpack()
    best = select_best(results)
    index = int(best.load()["trial"]["index"])  # a dynamic pipeline reads results as it runs
    evaluation, model, evaluation_files, _ = evaluate_best(cfg, dataset, folders[index], best)
    if evaluation.load()["gate"]["passed"]:
        promote_best(evaluation)
    uri = tracking_uri(mlflow_uri)
    if uri:
        log_to_mlflow(
            uri,
            USECASE.name,
            cfg.to_dict(),
            dataset,
            data_info,
            model,
            best,
            evaluation,
            evaluation_files,
        )


def run_pipeline(cfg: SweepConfig, mlflow_uri: str = "") -> PipelineRunResponse:
    """One sweep for ``cfg``: a new version of the ``sweep-<trials>x-w<workers>`` model."""
    model = Model(name=USECASE.registered_name(cfg), description=USECASE.title)
    return sweep_pipeline.with_options(model=model)(**flat_values(cfg), mlflow_uri=mlflow_uri)


if __name__ == "__main__":
    run_pipeline(config_from_argv(SweepConfig, sys.argv[1:]))
