"""What goes into an MLflow run: tags, params, metrics, the dataset input, the artifacts, and
:func:`log_run_to_mlflow`, the one call the other tools' pipelines make with a tracking URI.

The MLflow pipeline logs with MLflow's fluent calls and shares the pieces here (the dataset
entity, where a file goes, the model packaging); :func:`log_run_to_mlflow` records a run that
already finished elsewhere, in one batched request for params, metrics and tags.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlopsbench.tracking.packaging import log_core_model, serving_settings
from mlopsbench.tracking.store import (
    check_tracking_uri,
    import_mlflow,
    open_experiment,
    resolve_tracking_uri,
)
from mlopsbench.usecases.common.usecase import timed_stage

# Stage outputs that describe the stage, not the data (left out of a dataset's profile).
NOT_PROFILE = ("data_path", "digest", "seconds")


# ------------------------------------------------------------------------------------------
# tags, params, metrics
# ------------------------------------------------------------------------------------------


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD of the git checkout we run from (None outside git or without git)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def standard_tags(
    tool: str, usecase: str, extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Tool, use case, git commit (MLflow's own key, shown in the UI) and package versions."""
    from mlopsbench.result import environment_info

    tags = {"mlopsbench.tool": tool, "mlopsbench.usecase": usecase}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    # The core's distributions, plus MLflow (this run is tracked with it whatever the tool).
    for package, version in environment_info(("mlflow",)).items():
        if package != "platform":
            tags[f"version.{package}"] = version
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    history: Sequence[Mapping[str, float]] = (),
    tags: Mapping[str, Any] | None = None,
    prefix: str = "",
) -> None:
    """Params, final metrics, per-epoch history and tags in as few calls as MLflow allows.

    History rows become metrics with ``step=epoch`` (one series per key); MLflow's client splits
    the batch at its 1000-entity limit, so this is one HTTP request for a normal run.
    """
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    entries: list[Any] = []
    for step, row in enumerate(history, start=1):
        epoch = int(row.get("epoch", step))
        entries += [
            Metric(f"{prefix}{k}", float(v), now, epoch)
            for k, v in row.items()
            if k != "epoch" and _is_number(v)
        ]
    entries += [
        Metric(f"{prefix}{k}", float(v), now, 0)
        for k, v in (metrics or {}).items()
        if _is_number(v)
    ]
    client.log_batch(
        run_id,
        metrics=entries,
        params=[Param(k, param_value(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        synchronous=True,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def param_value(value: Any) -> str:
    """A param as MLflow stores it: text, at most 6000 characters (MLflow's limit)."""
    text = "None" if value is None else str(value)
    return text[:6000]


# ------------------------------------------------------------------------------------------
# the dataset input and the artifacts
# ------------------------------------------------------------------------------------------


def core_dataset(usecase: str, summary: Mapping[str, Any]) -> Any:
    """The core's ``prepare_data`` summary as an MLflow dataset, for ``mlflow.log_input``.

    Named ``<use case>:<origin>``, with the core's own content digest (MLflow does not re-hash
    the arrays), the summary's sizes as its profile and the data file as its source (the origin
    in a code source when there is no local file).
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json

    origin = str(summary.get("source", "unknown"))
    data_path = summary.get("data_path")
    if data_path:
        uri = Path(data_path).resolve().as_uri()
        source = get_dataset_source_from_json(json.dumps({"uri": uri}), source_type="local")
    else:
        source = CodeDatasetSource(tags={"origin": origin})
    profile = {k: v for k, v in summary.items() if k not in NOT_PROFILE and _jsonable(v)}
    return _core_dataset_class()(
        source=source,
        name=f"{usecase}:{origin}",
        digest=str(summary.get("digest", "unknown")),
        profile=profile,
    )


@functools.cache
def _core_dataset_class() -> type:
    """Defined on first use: its base class is MLflow's (importing this module stays free)."""
    from mlflow.data.meta_dataset import MetaDataset

    class CoreDataset(MetaDataset):  # type: ignore[misc]
        """A dataset known by its metadata, with a profile (MetaDataset has none)."""

        def __init__(self, source: Any, name: str, digest: str, profile: Mapping[str, Any]) -> None:
            self._profile = dict(profile)
            super().__init__(source=source, name=name, digest=digest)

        @property
        def profile(self) -> dict[str, Any]:
            return self._profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self._profile)}

    return CoreDataset


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def artifact_folder(path: str | Path) -> str:
    """Where a run file goes in the run's artifact tree (plots separate from records)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".png", ".svg", ".html"):
        return "plots"
    if suffix == ".json":
        return "evaluation"
    return "outputs"


def artifact_paths(files: Mapping[str, str]) -> list[str]:
    """Where each existing file of ``files`` lands in the run (``plots/tsne.png``)."""
    return [f"{artifact_folder(p)}/{Path(p).name}" for p in files.values() if _is_file(p)]


def log_artifact_files(client: Any, run_id: str, artifacts: Mapping[str, str]) -> list[str]:
    """Upload each existing file (folders are skipped: models go through log_model)."""
    for path in artifacts.values():
        if _is_file(path):
            client.log_artifact(run_id, str(path), artifact_path=artifact_folder(path))
    return artifact_paths(artifacts)


def _is_file(path: str | None) -> bool:
    return bool(path) and Path(str(path)).is_file()


# ------------------------------------------------------------------------------------------
# the helper other tools call
# ------------------------------------------------------------------------------------------


def log_stages_to_mlflow(
    tracking_uri: str | None,
    *,
    tool: str,
    usecase: str,
    run_name: str,
    config: Any,
    data: Mapping[str, Any],
    model: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    tags: Mapping[str, Any] | None = None,
    store_root: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`log_run_to_mlflow` from what the core's three stages returned, as a pipeline that
    passes them between its steps has them (``prepare_data``, the model stage, ``evaluate_model``).
    """
    gate = evaluation.get("gate") or {}
    gate_tag = {"mlopsbench.gate_passed": gate["passed"]} if "passed" in gate else {}
    return log_run_to_mlflow(
        tracking_uri,
        tool=tool,
        usecase=usecase,
        run_name=run_name,
        params=config.to_dict(),
        metrics=evaluation["metrics"],
        history=model.get("history") or [],
        artifacts=evaluation.get("artifacts") or {},
        model_dir=model["model_dir"],
        dataset=dict(data),
        tags={**gate_tag, **(tags or {})},
        store_root=store_root,
    )


@timed_stage  # its own "seconds", like a core stage: tools report it without timing code
def log_run_to_mlflow(
    tracking_uri: str | None,
    *,
    tool: str,
    usecase: str,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    history: Sequence[Mapping[str, float]] = (),
    artifacts: Mapping[str, str] | None = None,
    model_dir: str | None = None,
    dataset: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    store_root: str | Path | None = None,
) -> dict[str, Any]:
    """Record one finished pipeline run in MLflow, as the MLflow pipeline records its own.

    ``artifacts`` are files to upload (plots under ``plots/``, JSON under ``evaluation/``);
    ``model_dir`` is a core model folder, logged as a pyfunc model; ``dataset`` is the core's
    ``prepare_data`` summary (source, digest, sizes, data_path). Without a URI, uses
    ``$MLFLOW_TRACKING_URI`` or a SQLite store in ``store_root`` (default ``./runs/mlflow``).
    Returns ``{"run_id", "experiment_id", "model_uri", "seconds"}``.
    """
    from mlopsbench.usecases.registry import get_usecase

    case = get_usecase(usecase)
    root = Path(store_root) if store_root is not None else Path.cwd() / "runs" / "mlflow"
    uri = resolve_tracking_uri(tracking_uri, root)
    check_tracking_uri(uri)
    mlflow = import_mlflow()
    client, experiment_id = open_experiment(uri, case.name, root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        log_batch(
            client,
            run_id,
            params=params,
            metrics=metrics,
            history=history,
            tags=standard_tags(tool, case.name, tags),
        )
        if dataset:
            mlflow.log_input(core_dataset(case.name, dataset), context=case.data_context)
        log_artifact_files(client, run_id, artifacts or {})
        model_uri = None
        if model_dir:
            model_uri = log_core_model(
                case.name,
                model_dir,
                data_path=(dataset or {}).get("data_path"),
                settings=serving_settings(case.name, params),
            ).model_uri
    return {"run_id": run_id, "experiment_id": experiment_id, "model_uri": model_uri}
