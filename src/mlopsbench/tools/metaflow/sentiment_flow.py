"""SentimentFlow: the paper's IMDB + DistilBERT classifier as a Metaflow flow.

start -> load_data -> load_model -> evaluate (card) -> end. Run it like any Metaflow flow; the
datastore goes to ``./.metaflow`` and step files to ``./steps/<run id>/``::

    export METAFLOW_USER=$(whoami)-dev   # Metaflow needs a user name, and not 'root'
    FLOW=src/mlopsbench/tools/metaflow/sentiment_flow.py
    python $FLOW run --smoke true        # offline: tiny DistilBERT + bundled review fixture
    python $FLOW run --model_path ./distilbert-sst2 --sample_size 500
    python $FLOW card get <run id>/evaluate/<task id> card.html --id evaluation

or through the harness: ``mlopsbench run sentiment --tool metaflow --smoke``.
``--mlflow_uri sqlite:///mlflow.db`` (or ``$MLFLOW_TRACKING_URI``) also logs params, metrics
and the model to MLflow.

Every step body is one call into the core (``mlopsbench.usecases.sentiment.stages``). Artifacts
are plain data: the reviews file as bytes, the dataset summary (source + digest), metrics and,
when this flow trained the model (``smoke`` or ``fine_tune``), the model folder's files
(safetensors weights, config, tokenizer) as bytes. A pre-trained model is kept by reference
(``model_ref``) instead of copying hundreds of MB into the datastore on every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaflow import FlowSpec, Parameter, card, current, retry, step, timeout

from mlopsbench.tools.metaflow.flow_support import (
    check_data_path,
    fill_evaluation_card,
    folder_from_artifact,
    folder_to_artifact,
    inject_failure,
    mlflow_tracking_uri,
    step_dir,
    timed,
    write_file,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mlopsbench.usecases.sentiment.config import SentimentConfig


class SentimentFlow(FlowSpec):
    """Classify movie reviews; the card on ``evaluate`` shows accuracy and the confusion matrix."""

    smoke = Parameter("smoke", default=False, type=bool, help="tiny offline model + fixture")
    model_path = Parameter("model_path", default="", help="local checkpoint folder")
    model_name = Parameter(
        "model_name",
        default="distilbert-base-uncased-finetuned-sst-2-english",
        help="hub model (when no model_path)",
    )
    data_source = Parameter(
        "data_source", default="", help="hf, aclimdb, file or fixture (empty: by smoke)"
    )
    data_path = Parameter("data_path", default="", help="aclImdb/ folder or a review file")
    sample_size = Parameter("sample_size", default=0, type=int, help="test reviews (0: default)")
    seed = Parameter("seed", default=42, type=int, help="random seed")
    max_length = Parameter("max_length", default=512, type=int, help="truncation length")
    truncation = Parameter("truncation", default="tokens", help="tokens or chars (the paper's)")
    batch_size = Parameter("batch_size", default=8, type=int, help="inference batch size")
    fine_tune = Parameter("fine_tune", default=False, type=bool, help="fine-tune first")
    fine_tune_epochs = Parameter("fine_tune_epochs", default=0, type=int, help="0: default")
    fine_tune_lr = Parameter("fine_tune_lr", default=0.0, type=float, help="0: default")
    fine_tune_batch_size = Parameter("fine_tune_batch_size", default=16, type=int)
    train_sample_size = Parameter("train_sample_size", default=0, type=int, help="0: default")
    threshold = Parameter("threshold", default=0.80, type=float, help="quality gate on accuracy")
    precision = Parameter("precision", default="fp32", help="fp32, bf16, int8 or auto")
    device = Parameter("device", default="cpu", help="cpu, cuda or auto")
    mlflow_uri = Parameter(
        "mlflow_uri", default="", help="also log to MLflow (empty: $MLFLOW_TRACKING_URI or don't)"
    )

    @property
    def config(self) -> SentimentConfig:
        """The core's typed config, rebuilt from the Parameters (validates them)."""
        from mlopsbench.usecases.sentiment.config import SentimentConfig

        return SentimentConfig(
            smoke=self.smoke,
            model_path=self.model_path or None,
            model_name=self.model_name,
            source=self.data_source or None,
            data_path=self.data_path or None,
            sample_size=self.sample_size or None,
            seed=self.seed,
            max_length=self.max_length,
            truncation=self.truncation,
            batch_size=self.batch_size,
            fine_tune=self.fine_tune,
            fine_tune_epochs=self.fine_tune_epochs or None,
            fine_tune_lr=self.fine_tune_lr or None,
            fine_tune_batch_size=self.fine_tune_batch_size,
            train_sample_size=self.train_sample_size or None,
            threshold=self.threshold,
            precision=self.precision,
            device=self.device,
        )

    @step
    def start(self) -> None:
        """Validate the parameters before any work: bad input fails here, without retries."""
        self.params = self.config.to_dict()
        self.model_label = self.config.model_label
        check_data_path(self.data_path or None)
        check_data_path(self.model_path or None)
        self.stage_seconds = {}
        self.next(self.load_data)

    @retry(times=2, minutes_between_retries=0)  # the hub download can fail transiently
    @step
    def load_data(self) -> None:
        """Sample the reviews; keep the file as an artifact with its source and digest."""
        from pathlib import Path

        from mlopsbench.usecases.sentiment import stages

        inject_failure("load_data")
        prepared, seconds = timed(
            stages.prepare_data, self.config, step_dir(current.run_id, "load_data")
        )
        self.dataset = {k: v for k, v in prepared.items() if k != "data_path"}
        self.data_file = prepared["data_path"]
        self.data_name = Path(prepared["data_path"]).name
        self.data_bytes = Path(prepared["data_path"]).read_bytes()
        self.stage_seconds = {**self.stage_seconds, "data": seconds}
        self.next(self.load_model)

    @retry(times=2, minutes_between_retries=0)  # the hub download can fail transiently
    @timeout(minutes=120)  # fine-tuning on CPU is slow, but never endless
    @step
    def load_model(self) -> None:
        """Load (or, with smoke/fine_tune, train) the classifier; keep what was trained."""
        from mlopsbench.usecases.sentiment import stages

        inject_failure("load_model")
        prepared, seconds = timed(
            stages.prepare_model, self.config, step_dir(current.run_id, "load_model")
        )
        self.model_dir = prepared["model_dir"]
        self.model_label = prepared.get("model_name", self.model_label)
        self.history = prepared.get("history", [])
        self.train_data = prepared.get("train_data", {})  # lineage of the fine-tuning sample
        if self.config.trains:  # weights made by this run: store them (safetensors + config)
            self.model_files = folder_to_artifact(prepared["model_dir"])
            self.model_ref = ""
        else:  # a pre-trained checkpoint: store where it came from, not a copy
            self.model_files = {}
            self.model_ref = self.model_path or self.model_name
        self.stage_seconds = {**self.stage_seconds, "model": seconds}
        self.next(self.evaluate)

    @card(type="blank", id="evaluation")
    @step
    def evaluate(self) -> None:
        """Score the reviews; metrics, gate and plots go to the card."""
        import json

        from mlopsbench.usecases.sentiment import stages

        inject_failure("evaluate")
        workdir = step_dir(current.run_id, "evaluate")
        data_path = write_file(self.data_bytes, workdir / self.data_name)
        model_dir = self._model_folder(workdir / stages.MODEL_DIR)
        history_path = write_file(json.dumps(self.history).encode(), workdir / stages.HISTORY_FILE)
        evaluated, seconds = timed(
            stages.evaluate_model,
            self.config,
            data_path,
            model_dir,
            workdir,
            history_path=history_path,
        )
        self.inference = evaluated.get("inference", {})
        self.metrics = evaluated["metrics"]
        self.gate = evaluated["gate"]
        self.confusion = evaluated["confusion"]
        self.artifact_paths = {
            "model": self.model_dir,
            "data": self.data_file,
            **evaluated["artifacts"],
        }
        self.stage_seconds = {**self.stage_seconds, "evaluate": seconds}
        fill_evaluation_card(
            current.card["evaluation"],
            title=f"SentimentFlow · {self.model_label} · run {current.run_id}",
            evaluated=evaluated,
            facts={
                "dataset": f"{self.dataset.get('source')} (digest {self.dataset.get('digest')})",
                "reviews": self.dataset.get("n_test", self.dataset.get("n", "")),
                "truncation": f"{self.max_length} {self.truncation}",
                "model seconds": round(self.stage_seconds["model"], 2),
            },
        )
        self.next(self.end)

    @retry(times=2, minutes_between_retries=0)  # a tracking server can be briefly unreachable
    @step
    def end(self) -> None:
        """Log the run to MLflow when asked (shared helper); the run's record is complete."""
        uri = mlflow_tracking_uri(self.mlflow_uri)
        self.mlflow = {}
        if uri:
            from mlopsbench.tracking import log_run_to_mlflow

            self.mlflow, seconds = timed(
                log_run_to_mlflow,
                uri,
                tool="metaflow",
                usecase="sentiment",
                run_name=f"{current.flow_name}-{current.run_id}",
                params=self.params,
                metrics=self.metrics,
                history=self.history,
                artifacts={
                    k: v for k, v in self.artifact_paths.items() if k not in ("model", "data")
                },
                model_dir=self._model_folder(step_dir(current.run_id, "end") / "model"),
                dataset={**self.dataset, "data_path": self.data_file},
                tags={"metaflow.pathspec": f"{current.flow_name}/{current.run_id}"},
            )
            self.stage_seconds = {**self.stage_seconds, "tracking": seconds}

    def _model_folder(self, directory: Path) -> str:
        """The model for this step: restored from the artifact, or the pre-trained reference."""
        if self.model_files:
            return folder_from_artifact(self.model_files, directory)
        return str(self.model_dir)


if __name__ == "__main__":
    SentimentFlow()
