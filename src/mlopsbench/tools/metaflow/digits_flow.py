"""DigitsFlow: the paper's MNIST pipeline as a Metaflow flow.

start -> load_data -> train -> evaluate (card) -> end. Run it like any Metaflow flow; the
datastore goes to ``./.metaflow`` and step files to ``./steps/<run id>/``::

    export METAFLOW_USER=$(whoami)-dev   # Metaflow needs a user name, and not 'root'
    FLOW=src/mlopsbench/tools/metaflow/digits_flow.py
    python $FLOW run --model simple --epochs 1
    python $FLOW card get <run id>/evaluate/<task id> card.html --id evaluation
    # after a failure in evaluate: clones start/load_data/train, re-runs evaluate and end
    python $FLOW resume --origin-run-id <run id>

or through the harness: ``mlopsbench run digits --tool metaflow --model simple --epochs 1``.
``--mlflow_uri sqlite:///mlflow.db`` (or ``$MLFLOW_TRACKING_URI``) also logs params, metrics
and the model to MLflow.

Every step body is one call into the core (``mlopsbench.usecases.digits.stages``); heavy imports
stay inside the steps, since each step is a new Python process. Artifacts are plain data: the
dataset as ``.npz`` bytes, the model as safetensors bytes + its architecture config, metrics,
history and the dataset summary (source + digest) for lineage. No DataLoader, no ``nn.Module``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaflow import FlowSpec, Parameter, card, current, retry, step, timeout

from mlopsbench.tools.metaflow.flow_support import (
    check_data_path,
    fill_evaluation_card,
    inject_failure,
    mlflow_tracking_uri,
    read_model,
    step_dir,
    timed,
    write_file,
    write_model,
)

if TYPE_CHECKING:
    from mlopsbench.usecases.digits.config import DigitsConfig


class DigitsFlow(FlowSpec):
    """Train and evaluate a digit classifier; the card on ``evaluate`` shows how well."""

    model = Parameter("model", default="cnn", help="simple, deep or cnn")
    epochs = Parameter("epochs", default=5, type=int, help="training epochs")
    lr = Parameter("lr", default=1e-3, type=float, help="Adam learning rate")
    batch_size = Parameter("batch_size", default=64, type=int, help="mini-batch size")
    seed = Parameter("seed", default=42, type=int, help="random seed")
    data_source = Parameter(
        "data_source", default="sklearn", help="sklearn (bundled), hf, torchvision, idx or npz"
    )
    data_path = Parameter("data_path", default="", help="folder (idx) or file (npz)")
    test_fraction = Parameter(
        "test_fraction", default=0.2, type=float, help="test share (sources without a test split)"
    )
    split_seed = Parameter("split_seed", default=42, type=int, help="seed of that split")
    limit_train = Parameter("limit_train", default=0, type=int, help="cap on train images (0: all)")
    threshold = Parameter("threshold", default=0.90, type=float, help="quality gate on accuracy")
    precision = Parameter("precision", default="fp32", help="fp32, bf16 or auto")
    device = Parameter("device", default="cpu", help="cpu, cuda or auto")
    mlflow_uri = Parameter(
        "mlflow_uri", default="", help="also log to MLflow (empty: $MLFLOW_TRACKING_URI or don't)"
    )

    @property
    def config(self) -> DigitsConfig:
        """The core's typed config, rebuilt from the Parameters (validates them)."""
        from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig

        return DigitsConfig(
            model=self.model,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            threshold=self.threshold,
            precision=self.precision,
            device=self.device,
            data=DigitsDataConfig(
                source=self.data_source,
                path=self.data_path or None,
                test_fraction=self.test_fraction,
                split_seed=self.split_seed,
                limit_train=self.limit_train or None,
            ),
        )

    @step
    def start(self) -> None:
        """Validate the parameters before any work: bad input fails here, without retries."""
        self.params = self.config.to_dict()
        check_data_path(self.data_path or None)
        self.stage_seconds = {}
        self.next(self.load_data)

    @retry(times=2, minutes_between_retries=0)  # downloads (hf, torchvision) can fail transiently
    @step
    def load_data(self) -> None:
        """Load the images; keep them as an artifact (npz bytes) with their source and digest."""
        from pathlib import Path

        from mlopsbench.usecases.digits import stages

        inject_failure("load_data")
        prepared, seconds = timed(
            stages.prepare_data, self.config, step_dir(current.run_id, "load_data")
        )
        self.dataset = {k: v for k, v in prepared.items() if k != "data_path"}
        self.data_file = prepared["data_path"]  # this step's copy, for lineage (MLflow input)
        self.data_npz = Path(prepared["data_path"]).read_bytes()
        self.stage_seconds = {**self.stage_seconds, "data": seconds}
        self.next(self.train)

    @timeout(minutes=60)
    @step
    def train(self) -> None:
        """Train; keep the model as safetensors bytes + architecture config, and the history."""
        from mlopsbench.usecases.digits import stages

        inject_failure("train")
        workdir = step_dir(current.run_id, "train")
        data_path = write_file(self.data_npz, workdir / stages.DATA_FILE)
        trained, seconds = timed(stages.train_model, self.config, data_path, workdir)
        self.model_weights, self.model_config = read_model(trained["model_dir"])
        self.history = trained["history"]
        self.train_info = {"precision": trained["precision"], "device": trained["device"]}
        self.model_dir = trained["model_dir"]
        self.stage_seconds = {**self.stage_seconds, "train": seconds}
        self.next(self.evaluate)

    @card(type="blank", id="evaluation")
    @step
    def evaluate(self) -> None:
        """Score the model on the test split; metrics, gate and plots go to the card."""
        import json

        from mlopsbench.usecases.digits import stages

        inject_failure("evaluate")
        workdir = step_dir(current.run_id, "evaluate")
        data_path = write_file(self.data_npz, workdir / stages.DATA_FILE)
        model_dir = write_model(self.model_weights, self.model_config, workdir / stages.MODEL_DIR)
        history_path = write_file(json.dumps(self.history).encode(), workdir / stages.HISTORY_FILE)
        evaluated, seconds = timed(
            stages.evaluate_model,
            self.config,
            data_path,
            model_dir,
            workdir,
            history_path=history_path,
        )
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
            title=f"DigitsFlow · {self.config.model} · run {current.run_id}",
            evaluated=evaluated,
            facts={
                "dataset": f"{self.dataset['source']} ({self.dataset['n_train']} train / "
                f"{self.dataset['n_test']} test, digest {self.dataset['digest']})",
                "epochs": self.epochs,
                "lr": self.lr,
                "batch size": self.batch_size,
                "train seconds": round(self.stage_seconds["train"], 2),
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

            model_dir = write_model(
                self.model_weights, self.model_config, step_dir(current.run_id, "end") / "model"
            )
            self.mlflow, seconds = timed(
                log_run_to_mlflow,
                uri,
                tool="metaflow",
                usecase="digits",
                run_name=f"{current.flow_name}-{current.run_id}",
                params=self.params,
                metrics=self.metrics,
                history=self.history,
                artifacts={
                    k: v for k, v in self.artifact_paths.items() if k not in ("model", "data")
                },
                model_dir=model_dir,
                dataset={**self.dataset, "data_path": self.data_file},
                tags={"metaflow.pathspec": f"{current.flow_name}/{current.run_id}"},
            )
            self.stage_seconds = {**self.stage_seconds, "tracking": seconds}


if __name__ == "__main__":
    DigitsFlow()
