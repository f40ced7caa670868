"""KFP v2 lightweight components: each body is one call into the core stages.

KFP compiles a component from its function's *source*, and runs that source in a fresh Python
process (a pod on a cluster, a subprocess locally). So:

* every import sits inside the body, and the body needs the ``mlopsbench`` package installed
  where it runs (the image from ``docker/kfp/Dockerfile``; locally, this virtualenv);
* annotations must be real types (no ``from __future__ import annotations`` in this module);
* the container image is chosen when the components are built (``build_components(image)``),
  not at import time, so the image name stays configuration rather than a global.

Artifacts are folders where the core writes several files: ``dataset/data.npz``,
``model/model/{model.safetensors,model.json}`` + ``model/history.json``, ``evaluation/*``.
Consumers find files relative to their *own* input artifact's path (``model_subdir`` metadata),
because on a cluster every pod mounts artifacts at a different place.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

# ---- digits ------------------------------------------------------------------------------


def prepare_digits_data(
    data_source: str,
    data_path: str,
    data_test_fraction: float,
    data_split_seed: int,
    data_limit_train: int,
    dataset: Output[Dataset],
):
    """Load the configured digits source into ``dataset/data.npz`` (+ source and digest)."""
    import time

    from mlopsbench.tools.kfp.inside import stamp
    from mlopsbench.tools.kfp.params import digits_config
    from mlopsbench.usecases.digits import stages

    entered = time.time()
    cfg = digits_config(
        data_source=data_source,
        data_path=data_path,
        data_test_fraction=data_test_fraction,
        data_split_seed=data_split_seed,
        data_limit_train=data_limit_train,
    )
    info = stages.prepare_data(cfg, dataset.path)
    core = time.time() - entered
    dataset.metadata.update({k: v for k, v in info.items() if k != "data_path"})
    dataset.metadata["data_file"] = "data.npz"
    stamp(dataset, "data", entered, core)


def train_digits(
    dataset: Input[Dataset],
    architecture: str,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    precision: str,
    device: str,
    model: Output[Model],
    history: Output[Metrics],
):
    """Train; write the safetensors model folder + history; log per-epoch metrics."""
    import os
    import time

    from mlopsbench.tools.kfp.inside import history_metrics, stamp
    from mlopsbench.tools.kfp.params import digits_config
    from mlopsbench.usecases.digits import stages

    entered = time.time()
    cfg = digits_config(
        model=architecture,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        precision=precision,
        device=device,
    )
    data_file = os.path.join(dataset.path, dataset.metadata.get("data_file", "data.npz"))
    out = stages.train_model(cfg, data_file, model.path)
    core = time.time() - entered
    model.metadata.update(
        {
            "framework": "pytorch",
            "format": "safetensors-state_dict",
            "architecture": cfg.model,
            "model_subdir": os.path.relpath(out["model_dir"], model.path),
            "history_file": os.path.relpath(out["history_path"], model.path),
            "params": {k: v for k, v in cfg.to_dict().items() if not k.startswith("data_")},
            "precision": out["precision"],
            "device": out["device"],
        }
    )
    for name, value in history_metrics(out["history"]).items():
        history.log_metric(name, value)
    stamp(model, "train", entered, core)


def evaluate_digits(
    dataset: Input[Dataset],
    model: Input[Model],
    threshold: float,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Score on the test split; metrics, confusion matrix, plots and an HTML report.

    Returns the accuracy as the task's single output parameter: the pipeline's ``dsl.If`` gates
    on it. (A NamedTuple output is not resolved by kfp.local's condition evaluator, 2.17.3.)
    """
    import os
    import time

    from mlopsbench.tools.kfp.inside import scalar_metrics, stamp, write_report
    from mlopsbench.tools.kfp.params import digits_config
    from mlopsbench.usecases.digits import stages

    entered = time.time()
    cfg = digits_config(threshold=threshold)
    out = stages.evaluate_model(
        cfg,
        os.path.join(dataset.path, dataset.metadata.get("data_file", "data.npz")),
        os.path.join(model.path, model.metadata.get("model_subdir", "model")),
        evaluation.path,
        history_path=os.path.join(model.path, model.metadata.get("history_file", "history.json")),
    )
    core = time.time() - entered
    for name, value in scalar_metrics(out["metrics"]).items():
        metrics.log_metric(name, value)
    labels = [str(i) for i in range(len(out["confusion"]))]
    confusion.log_confusion_matrix(labels, out["confusion"])
    evaluation.metadata["files"] = sorted(os.listdir(evaluation.path))
    pngs = {k: v for k, v in out["artifacts"].items() if v.endswith(".png")}
    write_report(report.path, f"digits · {cfg.model}", out["metrics"], out["gate"], pngs)
    stamp(evaluation, "evaluate", entered, core)
    return float(out["gate"]["value"])


# ---- sentiment ---------------------------------------------------------------------------
# Every sentiment step gets the whole config: the core's prepare_model reads the training split
# itself (data settings) and evaluate needs the model settings, so no subset is safe.


def prepare_sentiment_data(
    smoke: bool,
    model_path: str,
    model_name: str,
    source: str,
    data_path: str,
    sample_size: int,
    seed: int,
    max_length: int,
    truncation: str,
    batch_size: int,
    fine_tune: bool,
    fine_tune_epochs: int,
    fine_tune_lr: float,
    fine_tune_batch_size: int,
    train_sample_size: int,
    threshold: float,
    precision: str,
    device: str,
    dataset: Output[Dataset],
):
    """Sample the configured reviews into ``dataset/`` (+ source and digest)."""
    import os
    import time

    from mlopsbench.tools.kfp.inside import stamp
    from mlopsbench.tools.kfp.params import sentiment_config_from
    from mlopsbench.usecases.sentiment import stages

    entered = time.time()
    cfg = sentiment_config_from(locals())  # the parameters above, by name
    info = stages.prepare_data(cfg, dataset.path)
    core = time.time() - entered
    dataset.metadata.update(
        {k: v for k, v in info.items() if k != "data_path" and isinstance(v, (str, int, float))}
    )
    dataset.metadata["data_file"] = os.path.relpath(info["data_path"], dataset.path)
    stamp(dataset, "data", entered, core)


def prepare_sentiment_model(
    smoke: bool,
    model_path: str,
    model_name: str,
    source: str,
    data_path: str,
    sample_size: int,
    seed: int,
    max_length: int,
    truncation: str,
    batch_size: int,
    fine_tune: bool,
    fine_tune_epochs: int,
    fine_tune_lr: float,
    fine_tune_batch_size: int,
    train_sample_size: int,
    threshold: float,
    precision: str,
    device: str,
    model: Output[Model],
    history: Output[Metrics],
):
    """Load (or, with smoke/fine_tune, train) the classifier; save it as a Hugging Face folder."""
    import os
    import time

    from mlopsbench.result import write_json_atomic
    from mlopsbench.tools.kfp.inside import adopt_folder, history_metrics, stamp
    from mlopsbench.tools.kfp.params import sentiment_config_from
    from mlopsbench.usecases.sentiment import stages

    entered = time.time()
    cfg = sentiment_config_from(locals())  # the parameters above, by name
    out = stages.prepare_model(cfg, model.path)
    core = time.time() - entered
    rows = list(out.get("history") or [])
    write_json_atomic(os.path.join(model.path, "history.json"), rows)
    model.metadata.update(
        {
            "framework": "transformers",
            "format": "huggingface-safetensors",
            "model_name": out["model_name"],
            # An untrained hub/local checkpoint lives outside the artifact: copy it in, so the
            # evaluate step (another pod on a cluster) receives the model through KFP.
            "model_subdir": adopt_folder(out["model_dir"], model.path, "model"),
            "history_file": "history.json",
            "params": cfg.to_dict(),
        }
    )
    for name, value in history_metrics(rows).items():
        history.log_metric(name, value)
    stamp(model, "model", entered, core)


def evaluate_sentiment(
    smoke: bool,
    model_path: str,
    model_name: str,
    source: str,
    data_path: str,
    sample_size: int,
    seed: int,
    max_length: int,
    truncation: str,
    batch_size: int,
    fine_tune: bool,
    fine_tune_epochs: int,
    fine_tune_lr: float,
    fine_tune_batch_size: int,
    train_sample_size: int,
    threshold: float,
    precision: str,
    device: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
    report: Output[HTML],
) -> float:
    """Classify the sampled reviews; metrics, confusion matrix, plots and an HTML report."""
    import os
    import time

    from mlopsbench.tools.kfp.inside import scalar_metrics, stamp, write_report
    from mlopsbench.tools.kfp.params import sentiment_config_from
    from mlopsbench.usecases.sentiment import stages

    entered = time.time()
    cfg = sentiment_config_from(locals())  # the parameters above, by name
    out = stages.evaluate_model(
        cfg,
        os.path.join(dataset.path, dataset.metadata["data_file"]),
        os.path.join(model.path, model.metadata.get("model_subdir", "model")),
        evaluation.path,
    )
    core = time.time() - entered
    for name, value in scalar_metrics(out["metrics"]).items():
        metrics.log_metric(name, value)
    confusion.log_confusion_matrix(["negative", "positive"], out["confusion"])
    evaluation.metadata["files"] = sorted(os.listdir(evaluation.path))
    pngs = {k: v for k, v in out["artifacts"].items() if str(v).endswith(".png")}
    title = f"sentiment · {model.metadata.get('model_name', cfg.model_label)}"
    write_report(report.path, title, out["metrics"], out["gate"], pngs)
    stamp(evaluation, "evaluate", entered, core)
    return float(out["gate"]["value"])


# ---- shared ------------------------------------------------------------------------------


def promote_model(
    usecase: str,
    run_name: str,
    mlflow_uri: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Input[Metrics],
    evaluation: Input[Artifact],
    promotion: Output[Artifact],
):
    """Runs only behind the quality gate: record the promotion (and log to MLflow if asked)."""
    import time

    from mlopsbench.tools.kfp.inside import promote, stamp

    entered = time.time()
    record = promote(
        usecase=usecase,
        run_name=run_name,
        mlflow_uri=mlflow_uri,
        dataset=dict(dataset.metadata),
        model_uri=model.uri,
        model_path=model.path,
        model_meta=dict(model.metadata),
        metrics=dict(metrics.metadata),
        evaluation_dir=evaluation.path,
        out_dir=promotion.path,
    )
    promotion.metadata["mlflow"] = record["mlflow"] or {}
    stamp(promotion, "promote", entered, time.time() - entered)


# ---- building ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Components:
    """The components of one image; ``pipelines`` wires them."""

    prepare_digits_data: Any
    train_digits: Any
    evaluate_digits: Any
    prepare_sentiment_data: Any
    prepare_sentiment_model: Any
    evaluate_sentiment: Any
    promote_model: Any


def build_components(image: str) -> Components:
    """Wrap the functions above as KFP components running in ``image``.

    ``install_kfp_package=False``: the image (or local virtualenv) already has kfp, and the
    default would ``pip install kfp`` at the start of every component.
    """

    def wrap(func: Callable[..., Any]) -> Any:
        return dsl.component(base_image=image, install_kfp_package=False)(func)

    return Components(
        prepare_digits_data=wrap(prepare_digits_data),
        train_digits=wrap(train_digits),
        evaluate_digits=wrap(evaluate_digits),
        prepare_sentiment_data=wrap(prepare_sentiment_data),
        prepare_sentiment_model=wrap(prepare_sentiment_model),
        evaluate_sentiment=wrap(evaluate_sentiment),
        promote_model=wrap(promote_model),
    )
