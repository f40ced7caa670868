"""The MLflow pipeline: one tracked run trains, logs and registers the model, then loads the
registered version back, scores it once, and makes it ``champion`` only if it passes.

    python -m mlopsbench.tools.mlflow.pipeline.run_pipeline digits --epochs 1 \\
        --tracking-uri sqlite:///runs/mlflow/mlflow.db

The paper's MLflow scripts on MLflow 3 (Listings 1, 7 and 8, then its script that loads the
model back from the registry and tests it): point MLflow at the store and the experiment, start
a run, log the params, prepare the data and build the model with the core and log what each
produced (the dataset, the per-epoch history), log the model as a pyfunc, register it, load the
registered version back as serving would, evaluate *that* model with the core (its predictions
are the evaluation and the validation: the test split is scored once), log the metrics and
plots, gate, promote. One script serves every use case: the use case's descriptor gives its
stages, its dataset's role and the code that serves its model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient

from mlopsbench import tracking
from mlopsbench.usecases.arguments import parse_usecase_args, usecase_parser
from mlopsbench.usecases.common.gate import GateResult, check_gate
from mlopsbench.usecases.registry import get_usecase

PYFUNC_MODEL = str(Path(__file__).with_name("pyfunc_model.py"))  # MLflow "models from code"
CHAMPION = "champion"


def run_pipeline(
    usecase: str,
    cfg: Any,
    out_dir: str | Path,
    tracking_uri: str,
    *,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train, log and register in one MLflow run; score the registered version once, promote it."""
    case = get_usecase(usecase)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(tracking.experiment_name(case.name))

    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        mlflow.log_params(cfg.to_dict())

        data = case.stages.prepare_data(cfg, out_dir)
        mlflow.log_input(tracking.core_dataset(case.name, data), context=case.data_context)

        model = case.stages.build_model(
            cfg, data["data_path"], out_dir, show_progress=show_progress
        )
        for row in model["history"]:
            epoch_metrics = {k: v for k, v in row.items() if k != "epoch"}
            mlflow.log_metrics(epoch_metrics, step=int(row["epoch"]))
        if "train_data" in model:  # a model trained here, on a sample of its own
            train_data = tracking.core_dataset(case.name, model["train_data"])
            mlflow.log_input(train_data, context="training")

        model_info = log_model(case, cfg, model["model_dir"], data["data_path"])
        version = register_version(model_info, case.registered_name(cfg))
        registered = load_version(version)
        evaluation = case.stages.evaluate_model(
            cfg,
            data["data_path"],
            model["model_dir"],
            out_dir,
            history_path=model["history_path"],
            predictor=registered,
        )
        mlflow.log_metrics(evaluation["metrics"])
        for path in evaluation["artifacts"].values():
            mlflow.log_artifact(path, artifact_path=tracking.artifact_folder(path))

        validation = validate(version, evaluation["metrics"]["accuracy"], cfg.threshold)
        promotion = promote_if_passed(version, validation["gate"])
        mlflow.set_tag("validation_status", promotion["validation_status"])

    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "stages": {"prepare_data": data, "build_model": model, "evaluate_model": evaluation},
        "logged_model_uri": model_info.model_uri,
        "version": version,
        "validation": validation,
        "promotion": promotion,
    }


def log_model(case: Any, cfg: Any, model_dir: str, data_path: str) -> Any:
    """The core's model folder as a pyfunc model of the run (a LoggedModel ``models:/m-<id>``):
    the model file is code, the weights (or, for a pre-trained checkpoint used as it is, its
    reference: name, revision, sha256) are artifacts, the core modules serving needs travel as
    ``code_paths``, the requirements are pinned (inferring them would cost ~13 s)."""
    settings = case.serving.settings_of(cfg)  # inference settings the served model keeps
    with tracking.packaged_model(case.name, model_dir, data_path, settings) as package:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=PYFUNC_MODEL,
            artifacts=package.artifacts,
            code_paths=package.code_paths,
            signature=package.signature,
            input_example=package.input_example,
            pip_requirements=package.pip_requirements,
            metadata=package.metadata,  # a pre-trained checkpoint: its reference, not weights
        )


def register_version(model_info: Any, name: str) -> Any:
    """A new version of the registered model ``name``, linked to the run and the LoggedModel;
    MLflow returns once the version is READY."""
    return mlflow.register_model(model_info.model_uri, name)


def load_version(version: Any) -> Any:
    """The registered version loaded back from the registry exactly as serving loads it
    (``mlflow.pyfunc.load_model``); returns the core ``Predictor`` it serves with, which the
    core's evaluation scores."""
    served = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
    return served.unwrap_python_model().predictor


def validate(version: Any, accuracy: float, threshold: float) -> dict[str, Any]:
    """The registered version's gate: its accuracy (scored on the test split after loading it
    back from the registry) against the threshold; logged to the run, tagged on the version."""
    mlflow.log_metric("validation_accuracy", accuracy)
    name, number = version.name, version.version
    client = MlflowClient()
    client.set_model_version_tag(name, number, "validation_accuracy", f"{accuracy:.6f}")
    client.set_model_version_tag(name, number, "validation_threshold", f"{threshold:.6f}")
    return {
        "metrics": {"validation_accuracy": accuracy},
        "gate": check_gate(accuracy, threshold),
    }


def promote_if_passed(version: Any, gate: GateResult) -> dict[str, Any]:
    """Point the ``champion`` alias at the version only when it passed the quality gate; tag the
    version either way. A rejected version leaves the alias where it was."""
    client = MlflowClient()
    name, number = version.name, str(version.version)
    aliases = client.get_registered_model(name).aliases  # alias -> version
    previous = str(aliases[CHAMPION]) if CHAMPION in aliases else None
    if gate.passed:
        client.set_registered_model_alias(name, CHAMPION, number)
        client.set_model_version_tag(name, number, "validation_status", "approved")
    else:
        client.set_model_version_tag(name, number, "validation_status", "rejected")
        client.set_model_version_tag(name, number, "validation_message", gate.message)
    return {
        "alias": CHAMPION,
        "promoted": gate.passed,
        "validation_status": "approved" if gate.passed else "rejected",
        "previous_champion": previous,
        "champion_version": number if gate.passed else previous,
    }


# ------------------------------------------------------------------------------------------
# command line: one sub-command per use case, its options made from the use case's config
# ------------------------------------------------------------------------------------------


def argument_parser() -> argparse.ArgumentParser:
    return usecase_parser(
        "Train, evaluate, register and promote a model with MLflow.", _script_options
    )


def _script_options(options: argparse.ArgumentParser) -> None:
    options.add_argument("--out", type=Path, default=Path("runs/mlflow-pipeline"))
    options.add_argument(
        "--tracking-uri", default=mlflow.get_tracking_uri(), help="MLflow tracking URI"
    )


def main(argv: list[str] | None = None) -> None:
    case, cfg, args = parse_usecase_args(argument_parser(), argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_pipeline(case.name, cfg, args.out, args.tracking_uri, show_progress=True)
    accuracy = result["validation"]["metrics"]["validation_accuracy"]
    version, promotion = result["version"], result["promotion"]
    print(
        f"run {result['run_id']}: {version.name} version {version.version}, "
        f"validation accuracy {accuracy:.4f}, {promotion['validation_status']}"
    )


if __name__ == "__main__":
    main()
