"""Train and evaluate a model, tracked by Weights & Biases: one W&B run per invocation.

    export WANDB_MODE=offline         # no account, no network: the run stays in ./wandb
    python -m mlopsbench.tools.wandb.pipeline.train digits --model simple --epochs 1
    wandb leet wandb/latest-run       # browse the run in the terminal, still offline
    wandb sync wandb/latest-run       # later, to the W&B cloud or a W&B Server

The training script of W&B's quickstart, around the core's three stages: ``wandb.init`` with
the use case's settings as the run's config (the stages read ``run.config`` back, so a sweep
can change them), the dataset as a ``dataset`` artifact, ``run.log`` once per epoch, the final
metrics in ``run.summary``, the per-class scores as a ``wandb.Table`` and the plots as
``wandb.Image``s, and the model folder as a ``model`` artifact that names its dataset. The
quality gate is the model's alias: every model is a ``candidate``, only one that passed the
gate becomes ``champion``. One script serves every use case: the use case's descriptor gives
its stages and its settings. ``--mlflow-uri`` (or ``$MLFLOW_TRACKING_URI``) also records the
run in MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import wandb

from mlopsbench.usecases.arguments import parse_usecase_args, usecase_parser
from mlopsbench.usecases.common.params import flat_values
from mlopsbench.usecases.registry import get_usecase

CANDIDATE = "candidate"  # every model this script logs
CHAMPION = "champion"  # only a model that passed the quality gate
PER_CLASS_COLUMNS = ["class", "precision", "recall", "f1", "support"]


def run_pipeline(
    usecase: str,
    cfg: Any,
    out_dir: str | Path,
    *,
    mlflow_uri: str = "",
    show_progress: bool = False,
) -> dict[str, Any]:
    """Prepare the data, build the model and evaluate it in one W&B run."""
    case = get_usecase(usecase)
    run = wandb.init(
        project=f"mlopsbench-{case.name}",
        job_type="train",
        config=flat_values(cfg),
        tags=[case.name, case.model_label(cfg)],
    )
    cfg = case.config(dict(run.config))  # what the run was given: a sweep may override it

    data = case.stages.prepare_data(cfg, out_dir)
    dataset = use_dataset(run, dataset_artifact(case.name, data))

    model = case.stages.build_model(cfg, data["data_path"], out_dir, show_progress=show_progress)
    for row in model["history"]:
        run.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    evaluation = case.stages.evaluate_model(
        cfg, data["data_path"], model["model_dir"], out_dir, history_path=model["history_path"]
    )
    run.summary.update(evaluation["metrics"])
    run.summary["evaluation"] = {  # the gate, the stage's seconds (and how it inferred)
        k: v for k, v in evaluation.items() if k not in ("metrics", "confusion", "artifacts")
    }
    run.log({"per_class": per_class_table(evaluation), **plot_images(evaluation)})

    passed = evaluation["gate"]["passed"]
    artifact = model_artifact(case.registered_name(cfg), model, dataset)
    run.log_artifact(artifact, aliases=["latest", CANDIDATE, *([CHAMPION] if passed else [])])
    run.tags = (*run.tags, "gate-passed" if passed else "gate-failed")

    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        run.summary["mlflow"] = log_to_mlflow(uri, run, case.name, cfg, data, model, evaluation)
    run.finish()  # an exception before this: W&B's exit hook finishes the run failed (exit 1)
    return {"run_id": run.id, "run_dir": str(Path(run.dir).parent), "gate": evaluation["gate"]}


def dataset_artifact(usecase: str, data: dict[str, Any]) -> wandb.Artifact:
    """The data file the stages share, described by what ``prepare_data`` returned (source,
    the core's digest, sizes). ``immutable``: W&B references the file instead of copying it."""
    artifact = wandb.Artifact(f"{usecase}-dataset", type="dataset", metadata=data)
    artifact.add_file(data["data_path"], policy="immutable")
    return artifact


def use_dataset(run: Any, artifact: wandb.Artifact) -> wandb.Artifact:
    """Declare the dataset as the run's input. ``use_artifact`` needs the W&B server, so an
    offline run logs the artifact instead (``wandb sync`` uploads it with the run); the model
    artifact names it either way."""
    if run.offline:
        return run.log_artifact(artifact)
    return run.use_artifact(artifact)


def model_artifact(name: str, model: dict[str, Any], dataset: wandb.Artifact) -> wandb.Artifact:
    """The model folder (safetensors weights + architecture), with what ``build_model`` returned
    and the dataset artifact it was built from (its name and W&B digest)."""
    built = {k: v for k, v in model.items() if k != "history"}  # the history is the run's
    metadata = {**built, "dataset": {"name": dataset.name, "digest": dataset.digest}}
    artifact = wandb.Artifact(name, type="model", metadata=metadata)
    artifact.add_dir(model["model_dir"], policy="immutable")
    return artifact


def per_class_table(evaluation: dict[str, Any]) -> wandb.Table:
    """Precision, recall, F1 and support of every class, from the evaluation's report."""
    report = json.loads(Path(evaluation["artifacts"]["evaluation"]).read_text())
    rows = [
        [label, *(scores[column] for column in PER_CLASS_COLUMNS[1:])]
        for label, scores in report["per_class"].items()
    ]
    return wandb.Table(columns=PER_CLASS_COLUMNS, data=rows)


def plot_images(evaluation: dict[str, Any]) -> dict[str, wandb.Image]:
    """The evaluation's figures (confusion matrix, t-SNE, training curve) as W&B images."""
    return {
        f"plots/{name}": wandb.Image(path)
        for name, path in evaluation["artifacts"].items()
        if path.endswith(".png")
    }


def log_to_mlflow(
    uri: str,
    run: Any,
    usecase: str,
    cfg: Any,
    data: dict[str, Any],
    model: dict[str, Any],
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """Record the same run in MLflow through the shared helper (its run id goes to the summary)."""
    from mlopsbench.tracking import log_stages_to_mlflow

    return log_stages_to_mlflow(  # type: ignore[no-any-return]
        uri,
        tool="wandb",
        usecase=usecase,
        run_name=f"wandb-{run.id}",
        config=cfg,
        data=data,
        model=model,
        evaluation=evaluation,
        tags={"wandb.run_id": run.id, "wandb.project": run.project},
    )


# ------------------------------------------------------------------------------------------
# command line: one sub-command per use case, its options made from the use case's config
# ------------------------------------------------------------------------------------------


def argument_parser() -> argparse.ArgumentParser:
    return usecase_parser("Train and evaluate a model, tracked by W&B.", _script_options)


def _script_options(options: argparse.ArgumentParser) -> None:
    options.add_argument("--out", type=Path, default=Path("runs/wandb-pipeline"))
    options.add_argument(
        "--mlflow-uri", default="", help="Also log to MLflow (else $MLFLOW_TRACKING_URI)."
    )


def main(argv: list[str] | None = None) -> None:
    case, cfg, args = parse_usecase_args(argument_parser(), argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_pipeline(case.name, cfg, args.out, mlflow_uri=args.mlflow_uri, show_progress=True)
    gate = result["gate"]
    print(
        f"W&B run {result['run_id']} in {result['run_dir']}: accuracy {gate['value']:.4f}, "
        f"{'champion' if gate['passed'] else 'candidate only (below the gate)'}"
    )


if __name__ == "__main__":
    main()
