"""SentimentFlow: the paper's IMDB + DistilBERT classifier as a Metaflow flow.

start -> load_data -> load_model -> evaluate (card) -> end. Run it like any Metaflow flow; the
datastore goes to ``./.metaflow`` and step files to ``./steps/<run id>/``::

    export METAFLOW_USER=$(whoami)-dev   # Metaflow needs a user name, and not 'root'
    FLOW=src/mlopsbench/tools/metaflow/pipeline/sentiment_flow.py
    python $FLOW run --help              # every setting of the core's SentimentConfig
    python $FLOW run --smoke true        # offline: tiny DistilBERT + bundled review fixture
    python $FLOW run --model_path ./distilbert-sst2 --sample_size 500
    python $FLOW card get evaluate card.html

``--mlflow_uri sqlite:///mlflow.db`` (or ``$MLFLOW_TRACKING_URI``) also logs params, metrics,
plots and the model to MLflow. Through the harness:
``mlopsbench run sentiment --tool metaflow --smoke``.

Each step is one call into the core (``mlopsbench.usecases.sentiment.stages``); the dict it
returns is kept as an artifact. Artifacts are plain data: the reviews file as bytes, its
lineage (source + digest), metrics and, when this run trained the model (``smoke`` or
``fine_tune``), the model folder's files (safetensors, config, tokenizer). A pre-trained model
is kept by reference (its folder in ``model_info``) rather than copied into the datastore on
every run.
"""

from __future__ import annotations

from pathlib import Path

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
from mlopsbench.usecases.sentiment.config import SentimentConfig


@config_parameters(SentimentConfig)  # --smoke, --model_path, --sample_size, ... from the core
class SentimentFlow(FlowSpec):
    """Classify movie reviews; the card on ``evaluate`` shows accuracy and the confusion matrix."""

    mlflow_uri = Parameter(
        "mlflow_uri", default="", help="Also log to MLflow (empty: $MLFLOW_TRACKING_URI or not)."
    )

    @property
    def config(self) -> SentimentConfig:
        return flow_config(self, SentimentConfig)

    @step
    def start(self) -> None:
        """Check the settings and local inputs: bad input fails here, without retries."""
        from mlopsbench.usecases.sentiment import stages

        self.params = self.config.to_dict()
        stages.check_inputs(self.config)
        self.next(self.load_data)

    @retry(times=2, minutes_between_retries=0)  # the hub download can fail transiently
    @step
    def load_data(self) -> None:
        """Sample the reviews; keep the file and its lineage (source, digest, sizes)."""
        from mlopsbench.usecases.sentiment import stages

        self.dataset = stages.prepare_data(self.config, step_dir())
        self.data_bytes = file_to_artifact(self.dataset["data_path"])
        self.next(self.load_model)

    @retry(times=2, minutes_between_retries=0)  # the hub download can fail transiently
    @timeout(minutes=120)  # fine-tuning on CPU is slow, but never endless
    @step
    def load_model(self) -> None:
        """Load the classifier (with smoke or fine_tune: train it); keep weights made here, and a
        checkpoint used as it is by reference only."""
        from mlopsbench.usecases.sentiment import stages

        self.model_info = stages.prepare_model(self.config, step_dir())
        trained_here = self.config.trains
        self.model_files = folder_to_artifact(self.model_info["model_dir"]) if trained_here else {}
        self.next(self.evaluate)

    @card(type="blank", id="evaluation")
    @step
    def evaluate(self) -> None:
        """Score the reviews; metrics, gate and plots go to the card."""
        from mlopsbench.usecases.sentiment import stages

        workdir = step_dir()
        self.evaluation = stages.evaluate_model(
            self.config,
            data_path=file_from_artifact(self.data_bytes, workdir / stages.DATA_FILE),
            model_dir=self._model_folder(workdir / stages.MODEL_DIR),
            out_dir=workdir,
            history_path=json_from_artifact(
                self.model_info["history"], workdir / stages.HISTORY_FILE
            ),
        )
        fill_evaluation_card(
            current.card["evaluation"],
            title=f"SentimentFlow · {self.model_info['model_name']} · run {current.run_id}",
            evaluation=self.evaluation,
            facts={
                "dataset": f"{self.dataset['source']} (digest {self.dataset['digest']})",
                "reviews": self.dataset.get("n_test", self.dataset.get("n", "")),
                "truncation": f"{self.max_length} {self.truncation}",
                "model seconds": round(self.model_info["seconds"], 2),
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
                usecase="sentiment",
                run_name=f"{current.flow_name}-{current.run_id}",
                params=self.params,
                metrics=self.evaluation["metrics"],
                history=self.model_info["history"],
                artifacts=self.evaluation["artifacts"],
                model_dir=self._model_folder(step_dir() / "model"),
                dataset=self.dataset,
                tags={"metaflow.pathspec": f"{current.flow_name}/{current.run_id}"},
            )

    def _model_folder(self, directory: Path) -> str:
        """The model for this step: the weights trained here, restored from their artifact, or
        the pre-trained checkpoint's reference (name, revision, sha256: a few hundred bytes of
        the step's artifacts) written back, so a step on another machine resolves it too."""
        if self.model_files:
            return folder_from_artifact(self.model_files, directory)
        reference = self.model_info.get("model_reference")
        if reference:
            from mlopsbench.usecases.sentiment.model import write_reference

            return str(write_reference(reference, directory))
        return str(self.model_info["model_dir"])


if __name__ == "__main__":
    SentimentFlow()
