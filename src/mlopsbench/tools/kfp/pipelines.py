"""The KFP pipelines: wiring only (every piece of work is a component) and the compiler.

``build_pipeline(usecase, settings)`` returns the ``@dsl.pipeline`` function for a use case;
``compile_pipeline`` writes its IR YAML. Defaults of the pipeline parameters are the core
configs' defaults, so a pipeline submitted with no arguments runs the paper's configuration.

No ``from __future__ import annotations`` here: KFP reads the pipeline functions' annotations
as real types.
"""

from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.tools.kfp.params import KfpSettings, check_usecase

PIPELINE_NAMES = {"digits": "mlopsbench-digits", "sentiment": "mlopsbench-sentiment"}
# One retry for transient failures (a preempted node, an OOM-killed pod). kfp.local honours it
# too, so a deterministic failure in training costs the step twice plus the backoff.
TRAIN_RETRIES = 1
TRAIN_BACKOFF = "10s"


def build_pipeline(usecase: str, settings: KfpSettings) -> Any:
    if check_usecase(usecase) == "digits":
        return _digits_pipeline(settings)
    return _sentiment_pipeline(settings)


def _digits_pipeline(settings: KfpSettings) -> Any:
    from kfp import dsl

    from mlopsbench.tools.kfp.components import build_components

    comps = build_components(settings.image)

    @dsl.pipeline(
        name=PIPELINE_NAMES["digits"],
        description="Digits: prepare data -> train -> evaluate -> promote if accuracy >= threshold",
    )
    def digits_pipeline(
        model: str = "cnn",
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 42,
        threshold: float = 0.90,
        precision: str = "fp32",
        device: str = "cpu",
        data_source: str = "sklearn",
        data_path: str = "",
        data_test_fraction: float = 0.2,
        data_split_seed: int = 42,
        data_limit_train: int = 0,
        mlflow_uri: str = "",
        run_name: str = "",
    ) -> None:
        data = comps.prepare_digits_data(
            data_source=data_source,
            data_path=data_path,
            data_test_fraction=data_test_fraction,
            data_split_seed=data_split_seed,
            data_limit_train=data_limit_train,
        )
        train = comps.train_digits(
            dataset=data.outputs["dataset"],
            architecture=model,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            precision=precision,
            device=device,
        )
        train.set_retry(num_retries=TRAIN_RETRIES, backoff_duration=TRAIN_BACKOFF)
        evaluate = comps.evaluate_digits(
            dataset=data.outputs["dataset"], model=train.outputs["model"], threshold=threshold
        )
        with dsl.If(evaluate.outputs["Output"] >= threshold, name="quality-gate"):
            _promote(comps, "digits", data, train, evaluate, mlflow_uri, run_name)

    return digits_pipeline


def _sentiment_pipeline(settings: KfpSettings) -> Any:
    from kfp import dsl

    from mlopsbench.tools.kfp.components import build_components

    comps = build_components(settings.image)

    @dsl.pipeline(
        name=PIPELINE_NAMES["sentiment"],
        description="Sentiment: sample reviews -> load/train model -> evaluate -> promote if "
        "accuracy >= threshold",
    )
    def sentiment_pipeline(
        smoke: bool = False,
        model_path: str = "",
        model_name: str = "distilbert-base-uncased-finetuned-sst-2-english",
        source: str = "",  # "" = the config's choice: fixture with smoke, else hf
        data_path: str = "",
        sample_size: int = 0,
        seed: int = 42,
        max_length: int = 512,
        truncation: str = "tokens",
        batch_size: int = 8,
        fine_tune: bool = False,
        fine_tune_epochs: int = 0,
        fine_tune_lr: float = 0.0,
        fine_tune_batch_size: int = 16,
        train_sample_size: int = 0,
        threshold: float = 0.80,
        precision: str = "fp32",
        device: str = "cpu",
        mlflow_uri: str = "",
        run_name: str = "",
    ) -> None:
        # Every sentiment step takes the whole config (see components.py).
        cfg = {
            "smoke": smoke,
            "model_path": model_path,
            "model_name": model_name,
            "source": source,
            "data_path": data_path,
            "sample_size": sample_size,
            "seed": seed,
            "max_length": max_length,
            "truncation": truncation,
            "batch_size": batch_size,
            "fine_tune": fine_tune,
            "fine_tune_epochs": fine_tune_epochs,
            "fine_tune_lr": fine_tune_lr,
            "fine_tune_batch_size": fine_tune_batch_size,
            "train_sample_size": train_sample_size,
            "threshold": threshold,
            "precision": precision,
            "device": device,
        }
        data = comps.prepare_sentiment_data(**cfg)
        model = comps.prepare_sentiment_model(**cfg)
        # Training (smoke model or fine-tuning) is the step worth retrying.
        model.set_retry(num_retries=TRAIN_RETRIES, backoff_duration=TRAIN_BACKOFF)
        evaluate = comps.evaluate_sentiment(
            **cfg, dataset=data.outputs["dataset"], model=model.outputs["model"]
        )
        with dsl.If(evaluate.outputs["Output"] >= threshold, name="quality-gate"):
            _promote(comps, "sentiment", data, model, evaluate, mlflow_uri, run_name)

    return sentiment_pipeline


def _promote(
    comps: Any, usecase: str, data: Any, model_task: Any, evaluate: Any, uri: Any, run: Any
) -> Any:
    promote = comps.promote_model(
        usecase=usecase,
        run_name=run,
        mlflow_uri=uri,
        dataset=data.outputs["dataset"],
        model=model_task.outputs["model"],
        metrics=evaluate.outputs["metrics"],
        evaluation=evaluate.outputs["evaluation"],
    )
    # A cached promotion would skip the MLflow logging of a new run: always execute it.
    promote.set_caching_options(enable_caching=False)
    return promote


def compile_pipeline(usecase: str, settings: KfpSettings, path: str | Path) -> Path:
    """Compile one pipeline to KFP IR YAML at ``path`` (a generated build output)."""
    from kfp import compiler

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror}") from None
    compiler.Compiler().compile(build_pipeline(usecase, settings), package_path=str(path))
    return path


def compile_all(
    out_dir: str | Path, settings: KfpSettings, usecases: tuple[str, ...]
) -> list[Path]:
    return [compile_pipeline(u, settings, Path(out_dir) / f"{u}_pipeline.yaml") for u in usecases]
