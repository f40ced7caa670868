"""Small helpers the Metaflow flows share: step folders, artifacts <-> files, timing, the card.

Only the standard library at module level: Metaflow imports the flow file (and so this module)
in the launching process and again in every step process, so anything heavy here would be paid
once per step.

Hand-over between steps goes through Metaflow artifacts (bytes, dicts), not through paths: a
step restores the files it needs into its own folder. That keeps steps independent of the
machine that ran the previous one (what ``--with kubernetes`` or ``resume`` needs) and never
pickles a DataLoader or an ``nn.Module``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

STEPS_DIR = "steps"  # <cwd>/steps/<run id>/<step>/ holds each step's output files
FAIL_STEP_ENV = "MLOPSBENCH_METAFLOW_FAIL_STEP"  # fault injection, to demonstrate `resume`


def step_dir(run_id: str, step: str) -> Path:
    """This step's output folder under the working directory, keyed by run id."""
    path = Path.cwd() / STEPS_DIR / str(run_id) / step
    path.mkdir(parents=True, exist_ok=True)
    return path


def inject_failure(step: str) -> None:
    """Raise when ``MLOPSBENCH_METAFLOW_FAIL_STEP`` names this step (to show failure + resume)."""
    if os.environ.get(FAIL_STEP_ENV, "").strip() == step:
        raise RuntimeError(f"injected failure in step {step!r} ({FAIL_STEP_ENV}={step})")


def mlflow_tracking_uri(parameter: str) -> str:
    """The flow's ``mlflow_uri`` Parameter, else ``$MLFLOW_TRACKING_URI``; empty: no MLflow."""
    return (parameter or os.environ.get("MLFLOW_TRACKING_URI", "")).strip()


def timed(func: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """Call ``func`` and return its result with the wall-clock seconds it took."""
    t0 = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - t0


def check_data_path(path: str | None) -> None:
    """Fail fast (in ``start``, which has no @retry) when a local data path does not exist."""
    from mlopsbench.errors import DataError

    if path and not Path(path).expanduser().exists():
        raise DataError(f"data path does not exist: {path}")


def write_file(data: bytes, path: Path) -> str:
    """Write bytes atomically and return the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return str(path)


def folder_to_artifact(directory: str | Path) -> dict[str, bytes]:
    """Every file of a (flat) folder as ``name -> bytes``: a saved model as one artifact."""
    directory = Path(directory)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def folder_from_artifact(files: Mapping[str, bytes], directory: Path) -> str:
    """Inverse of :func:`folder_to_artifact`: write the files back into ``directory``."""
    for name, data in files.items():
        write_file(data, directory / Path(name).name)  # .name: never write outside the folder
    return str(directory)


# The core's digits model folder (mlopsbench.usecases.digits.storage): weights + architecture.
WEIGHTS_FILE, SPEC_FILE = "model.safetensors", "model.json"


def read_model(model_dir: str | Path) -> tuple[bytes, dict[str, Any]]:
    """A saved digits model as (safetensors state_dict bytes, architecture config)."""
    model_dir = Path(model_dir)
    return (model_dir / WEIGHTS_FILE).read_bytes(), json.loads((model_dir / SPEC_FILE).read_text())


def write_model(weights: bytes, config: Mapping[str, Any], directory: Path) -> str:
    """Inverse of :func:`read_model`: a model folder the core's ``load_model`` reads."""
    write_file(weights, directory / WEIGHTS_FILE)
    write_file(json.dumps(dict(config), indent=2).encode(), directory / SPEC_FILE)
    return str(directory)


def fill_evaluation_card(
    card: Any,
    *,
    title: str,
    evaluated: Mapping[str, Any],
    facts: Mapping[str, Any],
) -> None:
    """Append the evaluation to a Metaflow card: headline metrics, per-class table, plots.

    ``evaluated`` is what a core ``evaluate_model`` stage returned (metrics, gate, artifacts);
    the plots are the PNGs it drew with matplotlib.
    """
    from metaflow.cards import Image, Markdown, Table

    metrics, gate = evaluated["metrics"], evaluated["gate"]
    verdict = "passed" if gate["passed"] else "**FAILED**"
    lines = [
        f"# {title}",
        f"**Accuracy {metrics['accuracy']:.4f}** · macro F1 {metrics.get('macro_f1', 0.0):.4f}"
        + (f" · loss {metrics['loss']:.4f}" if "loss" in metrics else ""),
        f"Quality gate {verdict}: {gate['metric']} {gate['value']:.4f} "
        f"(threshold {gate['threshold']:.2f})",
        "",
        *(f"- {key}: `{value}`" for key, value in facts.items()),
    ]
    card.append(Markdown("\n\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:])))
    card.append(Markdown("## Per-class metrics"))
    card.append(
        Table(_per_class_rows(evaluated), headers=["class", "precision", "recall", "f1", "support"])
    )
    for key, label in (
        ("confusion_matrix", "Confusion matrix"),
        ("tsne", "t-SNE of penultimate-layer embeddings"),
        ("training_curve", "Training curve"),
    ):
        path = evaluated["artifacts"].get(key)
        if path and Path(path).is_file():
            card.append(Markdown(f"## {label}"))
            card.append(Image(Path(path).read_bytes(), label=label))


def _per_class_rows(evaluated: Mapping[str, Any]) -> list[list[Any]]:
    report_path = evaluated["artifacts"].get("evaluation")
    if not report_path or not Path(report_path).is_file():
        return []
    per_class = json.loads(Path(report_path).read_text()).get("per_class", {})
    return [
        [
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        ]
        for name, row in per_class.items()
    ]
