"""SweepFlow: a hyper-parameter sweep of the digits classifier as a Metaflow ``foreach``.

start -> load_data -> train_trial (one task per trial) -> select_best (join) -> evaluate (card)
-> promote | hold (on the quality gate) -> end. Run it like any Metaflow flow::

    export METAFLOW_USER=$(whoami)-dev   # Metaflow needs a user name, and not 'root'
    FLOW=src/mlopsbench/tools/metaflow/pipeline/sweep_flow.py
    python $FLOW run --help              # every setting of the core's SweepConfig
    python $FLOW run --trials 4 --models simple,deep --epochs 1 --max-workers 2
    python $FLOW card get evaluate card.html
    python -c "from metaflow import Flow; print(Flow('SweepFlow').runs('champion'))"

``--max-workers`` is how many trials Metaflow runs at once (the core's ``--workers`` only
labels the record; the harness passes it as ``--max-workers``). More than 100 trials need
``--max-num-splits``. ``--mlflow_uri sqlite:///mlflow.db`` also logs the best trial to MLflow.
Through the harness: ``mlopsbench run sweep --tool metaflow --trials 4 --workers 2``.

Each step is one call into the core (``mlopsbench.usecases.sweep.stages``). ``@resources``
and ``@schedule`` take effect once the flow runs on a cluster (``argo-workflows create``); the
local runtime ignores them, and ``minutes_between_retries`` too (it retries at once). On
Kubernetes a request below Metaflow's defaults (1 CPU, 4096 MB) is raised to them.
"""

from __future__ import annotations

from pathlib import Path

from metaflow import (
    FlowSpec,
    Parameter,
    Run,
    card,
    current,
    resources,
    retry,
    schedule,
    step,
    timeout,
)

from mlopsbench.tools.metaflow.pipeline.evaluation_card import (
    add_trials_table,
    fill_evaluation_card,
)
from mlopsbench.tools.metaflow.pipeline.flow_helpers import (
    config_parameters,
    file_from_artifact,
    file_to_artifact,
    flow_config,
    folder_from_artifact,
    folder_to_artifact,
    json_from_artifact,
    mlflow_tracking_uri,
    step_dir,
)
from mlopsbench.usecases.sweep.config import SweepConfig

CHAMPION_TAG = "champion"  # the runs whose best trial passed the gate


@schedule(weekly=True)  # on Argo: a CronWorkflow re-runs the sweep every Sunday
@config_parameters(SweepConfig)  # --trials, --models, --learning_rates, ... from the core
class SweepFlow(FlowSpec):
    """Train every trial in parallel, evaluate the best; the card on ``evaluate`` shows it."""

    mlflow_uri = Parameter(
        "mlflow_uri", default="", help="Also log to MLflow (empty: $MLFLOW_TRACKING_URI or not)."
    )

    @property
    def config(self) -> SweepConfig:
        return flow_config(self, SweepConfig)

    @step
    def start(self) -> None:
        """Check the settings and local inputs, and draw the trials (bad input fails here)."""
        from mlopsbench.usecases.sweep import stages

        self.params = self.config.to_dict()
        stages.check_inputs(self.config)
        self.trial_plan = stages.plan_trials(self.config)
        self.next(self.load_data)

    @retry(times=2, minutes_between_retries=0)  # downloads (hf, torchvision) can fail transiently
    @step
    def load_data(self) -> None:
        """Load the images once for every trial; fan out: one task per planned trial."""
        from mlopsbench.usecases.sweep import stages

        self.dataset = stages.prepare_data(self.config, step_dir())
        self.data_bytes = file_to_artifact(self.dataset["data_path"])
        self.next(self.train_trial, foreach="trial_plan")

    @resources(cpu=1)  # each trial trains with one thread: a cluster can pack them
    @retry(times=1, minutes_between_retries=1)  # a lost node or a transient error: once more
    @timeout(minutes=60)
    @step
    def train_trial(self) -> None:
        """Train and score one trial (``self.input``); keep its record and its model's files."""
        from mlopsbench.usecases.sweep import stages

        folder = step_dir() / self.input["name"]
        data_path = file_from_artifact(
            self.data_bytes, folder / Path(self.dataset["data_path"]).name
        )
        self.trial_result = stages.run_trial(self.config, data_path, self.input, step_dir())
        self.model_files = folder_to_artifact(self.trial_result["model_dir"])
        self.next(self.select_best)

    @step
    def select_best(self, inputs) -> None:  # type: ignore[no-untyped-def]
        """The fan-in: every trial's record, and the best trial's model files."""
        from mlopsbench.usecases.sweep import stages

        self.results = [task.trial_result for task in inputs]
        self.best = stages.select_best(self.results)
        self.best_model_files = inputs[self.results.index(self.best)].model_files
        self.merge_artifacts(inputs, exclude=["trial_result", "model_files"])
        self.next(self.evaluate)

    @resources(cpu=2)  # t-SNE and the plots use the cores they get
    @card(type="blank", id="evaluation")
    @step
    def evaluate(self) -> None:
        """Score the best trial's model as a normal run; metrics, gate, plots go to the card."""
        from mlopsbench.usecases.sweep import stages

        workdir = step_dir()
        best = {
            **self.best,
            "model_dir": folder_from_artifact(self.best_model_files, workdir / "model"),
            "history_path": json_from_artifact(self.best["history"], workdir / "history.json"),
        }
        data_path = file_from_artifact(
            self.data_bytes, workdir / Path(self.dataset["data_path"]).name
        )
        self.evaluation = stages.evaluate_best(self.config, data_path, best, workdir)
        trial = self.best["trial"]
        fill_evaluation_card(
            current.card["evaluation"],
            title=f"SweepFlow · best {trial['name']} of {len(self.results)} · run {current.run_id}",
            evaluation=self.evaluation,
            facts={
                "dataset": f"{self.dataset['source']} (digest {self.dataset['digest']})",
                "best trial": f"{trial['model']}, lr {trial['lr']}, batch {trial['batch_size']}",
                "epochs": self.epochs,
                "sampler": f"{self.sampler} (seed {self.sweep_seed})",
            },
        )
        add_trials_table(current.card["evaluation"], stages.trial_table(self.results))
        self.gate_verdict = "passed" if self.evaluation["gate"]["passed"] else "failed"
        self.next({"passed": self.promote, "failed": self.hold}, condition="gate_verdict")

    @step
    def promote(self) -> None:
        """The best trial passed the gate: tag the run, so ``runs('champion')`` finds it."""
        Run(f"{current.flow_name}/{current.run_id}").add_tag(CHAMPION_TAG)
        self.promoted = True
        self.next(self.end)

    @step
    def hold(self) -> None:
        """The best trial missed the gate: nothing is promoted (the card says by how much)."""
        self.promoted = False
        self.next(self.end)

    @retry(times=2, minutes_between_retries=0)  # a tracking server can be briefly unreachable
    @step
    def end(self) -> None:
        """Log the best trial to MLflow when asked (params, metrics, plots, model, dataset)."""
        self.mlflow = {}
        uri = mlflow_tracking_uri(self.mlflow_uri)
        if uri:
            from mlopsbench.tracking import log_run_to_mlflow

            self.mlflow = log_run_to_mlflow(
                uri,
                tool="metaflow",
                usecase="sweep",
                run_name=f"{current.flow_name}-{current.run_id}",
                params=self.params,
                metrics=self.evaluation["metrics"],
                history=self.best["history"],
                artifacts=self.evaluation["artifacts"],
                model_dir=folder_from_artifact(self.best_model_files, step_dir() / "model"),
                dataset=self.dataset,
                tags={
                    "metaflow.pathspec": f"{current.flow_name}/{current.run_id}",
                    "mlopsbench.best_trial": self.best["trial"]["name"],
                },
            )


if __name__ == "__main__":
    SweepFlow()
