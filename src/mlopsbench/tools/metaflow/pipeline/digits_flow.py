"""DigitsFlow: the paper's MNIST pipeline as a Metaflow flow.

start -> load_data -> train -> evaluate (card) -> end. Run it like any Metaflow flow; the
datastore goes to ``./.metaflow`` and step files to ``./steps/<run id>/``::

    export METAFLOW_USER=$(whoami)-dev   # Metaflow needs a user name, and not 'root'
    FLOW=src/mlopsbench/tools/metaflow/pipeline/digits_flow.py
    python $FLOW run --help              # every setting of the core's DigitsConfig
    python $FLOW run --model simple --epochs 1
    python $FLOW card get evaluate card.html
    python $FLOW resume --origin-run-id <run id>   # after a failed step: re-runs from there

``--mlflow_uri sqlite:///mlflow.db`` (or ``$MLFLOW_TRACKING_URI``) also logs params, metrics,
plots and the model to MLflow. Through the harness:
``mlopsbench run digits --tool metaflow --model simple --epochs 1``.

Each step is one call into the core (``mlopsbench.usecases.digits.stages``); the dict it
returns is kept as an artifact. Heavy imports stay inside the steps: each step is a new Python
process. Artifacts are plain data: the dataset file and the model folder as bytes, metrics,
history and the dataset's lineage (source + digest). No DataLoader, no ``nn.Module``.
"""

from __future__ import annotations

from metaflow import FlowSpec, Parameter, card, current, retry, step, timeout

from mlopsbench.tools.metaflow.pipeline.evaluation_card import fill_evaluation_card
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
from mlopsbench.usecases.digits.config import DigitsConfig


@config_parameters(DigitsConfig)  # --model, --epochs, --lr, ... as the core defines them
class DigitsFlow(FlowSpec):
    """Train and evaluate a digit classifier; the card on ``evaluate`` shows how well."""

    mlflow_uri = Parameter(
        "mlflow_uri", default="", help="Also log to MLflow (empty: $MLFLOW_TRACKING_URI or not)."
    )

    @property
    def config(self) -> DigitsConfig:
        return flow_config(self, DigitsConfig)

    @step
    def start(self) -> None:
        """Check the settings and local inputs: bad input fails here, without retries."""
        from mlopsbench.usecases.digits import stages

        self.params = self.config.to_dict()
        stages.check_inputs(self.config)
        self.next(self.load_data)

    @retry(times=2, minutes_between_retries=0)  # downloads (hf, torchvision) can fail transiently
    @step
    def load_data(self) -> None:
        """Load the images; keep the dataset file and its lineage (source, digest, sizes)."""
        from mlopsbench.usecases.digits import stages

        self.dataset = stages.prepare_data(self.config, step_dir())
        self.data_bytes = file_to_artifact(self.dataset["data_path"])
        self.next(self.train)

    @timeout(minutes=60)
    @step
    def train(self) -> None:
        """Train; keep the model folder (safetensors + architecture) and the history."""
        from mlopsbench.usecases.digits import stages

        workdir = step_dir()
        data_path = file_from_artifact(self.data_bytes, workdir / stages.DATA_FILE)
        self.model_info = stages.train_model(self.config, data_path, workdir)
        self.model_files = folder_to_artifact(self.model_info["model_dir"])
        self.next(self.evaluate)

    @card(type="blank", id="evaluation")
    @step
    def evaluate(self) -> None:
        """Score the model on the test split; metrics, gate and plots go to the card."""
        from mlopsbench.usecases.digits import stages

        workdir = step_dir()
        self.evaluation = stages.evaluate_model(
            self.config,
            data_path=file_from_artifact(self.data_bytes, workdir / stages.DATA_FILE),
            model_dir=folder_from_artifact(self.model_files, workdir / stages.MODEL_DIR),
            out_dir=workdir,
            history_path=json_from_artifact(
                self.model_info["history"], workdir / stages.HISTORY_FILE
            ),
        )
        fill_evaluation_card(
            current.card["evaluation"],
            title=f"DigitsFlow · {self.model} · run {current.run_id}",
            evaluation=self.evaluation,
            facts={
                "dataset": f"{self.dataset['source']} ({self.dataset['n_train']} train / "
                f"{self.dataset['n_test']} test, digest {self.dataset['digest']})",
                "epochs": self.epochs,
                "lr": self.lr,
                "batch size": self.batch_size,
                "train seconds": round(self.model_info["seconds"], 2),
            },
        )
        self.next(self.end)

    @retry(times=2, minutes_between_retries=0)  # a tracking server can be briefly unreachable
    @step
    def end(self) -> None:
        """Log the run to MLflow when asked (params, metrics, plots, model, dataset)."""
        self.mlflow = {}
        uri = mlflow_tracking_uri(self.mlflow_uri)
        if uri:
            from mlopsbench.tracking import log_run_to_mlflow

            self.mlflow = log_run_to_mlflow(
                uri,
                tool="metaflow",
                usecase="digits",
                run_name=f"{current.flow_name}-{current.run_id}",
                params=self.params,
                metrics=self.evaluation["metrics"],
                history=self.model_info["history"],
                artifacts=self.evaluation["artifacts"],
                model_dir=folder_from_artifact(self.model_files, step_dir() / "model"),
                dataset=self.dataset,
                tags={"metaflow.pathspec": f"{current.flow_name}/{current.run_id}"},
            )


if __name__ == "__main__":
    DigitsFlow()
