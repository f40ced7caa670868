"""Reading a run's DVC project back through DVC's own Python API (never its cache layout).

``dvc.api.params_show`` (params.yaml as DVC reads it), ``Repo.metrics.show`` (the metrics files
``dvc metrics show`` lists), ``Repo.index`` (the stages with what ``dvc.lock`` recorded: each
dependency's and output's md5 and the params each stage ran with), ``Repo.status`` and
``Repo.data_status`` (``dvc status`` / ``dvc data status``), ``Repo.plots.show`` (``dvc plots
show``), ``dvc.api.exp_show`` (``dvc exp show``), ``dvc.api.artifacts_show`` (the GTO model
registry) and ``DVCFileSystem`` for the files the stages wrote (what each core stage returned,
DVCLive's per-epoch rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlopsbench.errors import MlopsbenchError
from mlopsbench.usecases.common.modelfiles import holds_model
from mlopsbench.usecases.common.usecase import STAGES, UseCase

METRICS_FILE = "metrics.json"  # the core's metrics, next to the evaluate stage's report
MLFLOW_FILE = "mlflow.json"  # the evaluate stage's MLflow run, next to its report
DVCLIVE_METRICS = "dvclive/plots/metrics"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Recorded:
    """What ``dvc.lock`` says about one stage: md5 of each dependency and output, its params."""

    deps: dict[str, str]
    outs: dict[str, str]
    cached: dict[str, bool]  # output -> kept in DVC's cache (``cache: false``: git's)
    params: dict[str, Any]


@dataclass
class ProjectBack:
    """A run's DVC project as DVC reports it."""

    root: Path
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]  # metrics file -> its values
    stages: dict[str, Recorded]  # DVC stage -> what dvc.lock recorded (pipeline order)
    reports: dict[str, dict[str, Any]]  # core stage -> what it returned
    stage_of: dict[str, str]  # core stage -> the DVC stage that ran it
    status: dict[str, Any]  # `dvc status`: empty when every stage is up to date
    not_in_cache: list[str] = field(default_factory=list)  # `dvc data status`
    model_files: list[str] = field(default_factory=list)  # what DVC lists in the model folder
    report_paths: dict[str, str] = field(default_factory=dict)  # core stage -> its report
    mlflow: dict[str, Any] = field(default_factory=dict)  # the evaluate stage's MLflow run

    @property
    def pipeline_stages(self) -> list[str]:
        """The stages of dvc.yaml (not the ``.dvc`` files of added data)."""
        return [name for name in self.stages if not name.endswith(".dvc")]

    def model_out(self) -> str | None:
        """The output of the model stage that holds the model folder it reported."""
        model_dir = str(self.reports.get("build_model", {}).get("model_dir") or "")
        recorded = self.stages.get(self.stage_of.get("build_model", ""))
        if not model_dir or recorded is None:
            return None
        return next(
            (out for out in recorded.outs if model_dir == out or model_dir.startswith(f"{out}/")),
            None,
        )


@contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        yield repo


def read_project(root: Path, reports: Mapping[str, str] | None = None) -> ProjectBack:
    """Everything the record and the evidence need, read through DVC. ``reports``: core stage
    -> the file name of its report where it is not ``<core stage>.json`` (the sweep's model
    stage trains one trial: ``run_trial.json``)."""
    import dvc.api

    names = {core: f"{core}.json" for core in STAGES} | dict(reports or {})
    with open_repo(root) as repo:
        index = {_stage_name(stage): stage for stage in repo.index.stages}
        paths = _report_paths(repo.dvcfs, index, names)
        reports = {core: json.loads(repo.dvcfs.read_text(path)) for core, path in paths.items()}
        mlflow = _read_json(repo.dvcfs, _beside(paths.get("evaluate_model"), MLFLOW_FILE))
        return ProjectBack(
            root=root,
            params=dvc.api.params_show(repo=str(root)),
            metrics=_metrics(repo.metrics.show()),
            stages={name: _recorded(stage) for name, stage in index.items()},
            reports=reports,
            stage_of={core: _stage_holding(index, path) for core, path in paths.items()},
            status=repo.status(),
            not_in_cache=list(repo.data_status(granular=False).get("not_in_cache", [])),
            model_files=_listing(repo.dvcfs, reports.get("build_model", {}).get("model_dir")),
            report_paths=paths,
            mlflow=mlflow or {},
        )


def _listing(fs: Any, folder: Any) -> list[str]:
    """Files DVC lists in a project folder (nothing for a folder outside the project)."""
    if not folder or Path(str(folder)).is_absolute() or not fs.isdir(str(folder)):
        return []
    return sorted(Path(str(path)).name for path in fs.ls(str(folder), detail=False))


def _stage_name(stage: Any) -> str:
    """A dvc.yaml stage's name, or a ``.dvc`` file's name (``inputs.dvc``) for added data."""
    return str(getattr(stage, "name", None) or Path(stage.path).name)


def _recorded(stage: Any) -> Recorded:
    deps: dict[str, str] = {}
    params: dict[str, Any] = {}
    for dep in stage.deps:
        value = dep.hash_info.value if dep.hash_info else None
        if isinstance(value, dict):  # a params dependency: the values the stage ran with
            params.update(value)
        elif value:
            deps[dep.def_path] = str(value)
    outs = {out.def_path: str(out.hash_info.value) for out in stage.outs if out.hash_info}
    cached = {out.def_path: bool(out.use_cache) for out in stage.outs}
    return Recorded(deps, outs, cached, params)


def _report_paths(fs: Any, index: dict[str, Any], names: Mapping[str, str]) -> dict[str, str]:
    """Where each core stage's report is (``names[core]``), written by its DVC stage into one
    of that stage's outputs (a file output, or a folder output holding it)."""
    paths: dict[str, str] = {}
    for core, file_name in names.items():
        for stage in index.values():
            path = _report_path(fs, stage, file_name)
            if path is not None:
                paths[core] = path
                break
    return paths


def _report_path(fs: Any, stage: Any, file_name: str) -> str | None:
    for out in stage.outs:
        path = str(out.def_path)
        candidate = path if Path(path).name == file_name else f"{path}/{file_name}"
        if (candidate == path or fs.isdir(path)) and fs.isfile(candidate):
            return candidate
    return None


def _stage_holding(index: dict[str, Any], path: str) -> str:
    return next(
        name
        for name, stage in index.items()
        if any(path == out.def_path or path.startswith(f"{out.def_path}/") for out in stage.outs)
    )


def _beside(path: str | None, name: str) -> str | None:
    return None if path is None else str(Path(path).with_name(name))


def _read_json(fs: Any, path: str | None) -> Any:
    return json.loads(fs.read_text(path)) if path and fs.isfile(path) else None


def _metrics(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``Repo.metrics.show()`` of the workspace as ``{file: values}``."""
    files = (shown.get("") or {}).get("data", {})
    return {path: dict(entry.get("data") or {}) for path, entry in files.items()}


# ---------------------------------------------------------------------------------------------
# experiments, the registry, plots
# ---------------------------------------------------------------------------------------------


def experiment_row(root: Path, name: str) -> dict[str, Any] | None:
    """The row of experiment ``name`` in ``dvc exp show`` (its params and metrics)."""
    import dvc.api

    rows = dvc.api.exp_show(repo=str(root))
    return next((row for row in rows if row.get("Experiment") == name), None)


def model_artifact_name(root: Path) -> str | None:
    """The model artifact dvc.yaml declares (``artifacts:``, ``type: model``)."""
    with open_repo(root) as repo:
        declared = repo.artifacts.read()
    names = [n for found in declared.values() for n, a in found.items() if a.type == "model"]
    return names[0] if names else None


def registered(root: Path, artifact: str) -> dict[str, Any] | None:
    """The artifact's latest registered version (a GTO git tag), None when there is none."""
    import dvc.api
    from dvc.exceptions import ArtifactNotFoundError

    try:
        return dict(dvc.api.artifacts_show(artifact, repo=str(root)))
    except ArtifactNotFoundError:
        return None


def plot_images(root: Path) -> dict[str, bool]:
    """Each image plot ``dvc plots show`` finds, and whether it holds a PNG."""
    with open_repo(root) as repo:
        shown = repo.plots.show()
    sources = (shown.get("workspace") or {}).get("sources", {}).get("data", {})
    return {
        path: isinstance(entry.get("data"), bytes) and entry["data"].startswith(PNG_MAGIC)
        for path, entry in sources.items()
        if path.endswith(".png")
    }


def epoch_rows(root: Path) -> dict[str, list[dict[str, str]]]:
    """DVCLive's per-epoch series: ``{metric: rows}``, one row per step (``dvc plots`` data)."""
    import csv

    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root))
    if not fs.isdir(DVCLIVE_METRICS):
        return {}
    series = {}
    for path in sorted(fs.find(DVCLIVE_METRICS)):
        if path.endswith(".tsv"):
            rows = list(csv.DictReader(fs.read_text(path).splitlines(), delimiter="\t"))
            series[Path(path).stem] = rows
    return series


# ---------------------------------------------------------------------------------------------
# the evidence
# ---------------------------------------------------------------------------------------------


def recorded_evidence(
    back: ProjectBack, usecase: UseCase, expected_params: dict[str, Any], accuracy: Any
) -> dict[str, bool]:
    """The evidence checklist, each item judged from what DVC stored for the run."""
    return {
        "params": params_recorded(back, usecase, expected_params),
        "per_epoch_metrics": epochs_recorded(back),
        "final_metrics": _accuracy_recorded(back, accuracy),
        "model_artifact": model_cached(back),
        "plots": sum(plot_images(back.root).values()) >= 2,
        "lineage": lineage_recorded(back),
        "run_state": run_state_clean(back),
    }


def params_recorded(back: ProjectBack, usecase: UseCase, expected: dict[str, Any]) -> bool:
    """params.yaml, as DVC reads it, is the run's config; every setting some stage ran with is
    the value dvc.lock recorded for it."""
    try:
        config = usecase.config(dict(back.params))
    except MlopsbenchError:  # values the config rejects: not the run's config
        return False
    used = {k: v for stage in back.stages.values() for k, v in stage.params.items()}
    return (
        bool(used)
        and config.to_dict() == expected
        and all(back.params.get(k) == v for k, v in used.items())
    )


def epochs_recorded(back: ProjectBack) -> bool:
    """DVCLive logged one step per epoch the core reported (none without training)."""
    history = back.reports.get("build_model", {}).get("history") or []
    series = epoch_rows(back.root)
    epochs = [str(int(row["epoch"])) for row in history]
    return (
        bool(epochs)
        and bool(series)
        and all([row["step"] for row in rows] == epochs for rows in series.values())
    )


def _accuracy_recorded(back: ProjectBack, accuracy: Any) -> bool:
    path = _beside(back.report_paths.get("evaluate_model"), METRICS_FILE)
    stored = back.metrics.get(path or "", {}).get("accuracy")
    if not isinstance(stored, int | float):
        return False
    return accuracy is None or abs(float(stored) - float(accuracy)) < 1e-9


def model_cached(back: ProjectBack) -> bool:
    """The model folder is a stage output DVC cached (an md5 in dvc.lock, present in the
    cache) and holds weights, or the reference (name, revision, sha256) to a checkpoint used as
    it is; a folder outside the project (the hub's cache) does not count."""
    out = back.model_out()
    recorded = back.stages.get(back.stage_of.get("build_model", ""))
    if out is None or recorded is None or not recorded.cached.get(out):
        return False
    if any(path.rstrip("/") == out for path in back.not_in_cache):
        return False
    return bool(recorded.outs.get(out)) and holds_model(dict.fromkeys(back.model_files))


def lineage_recorded(back: ProjectBack) -> bool:
    """dvc.lock links data -> model -> evaluation by md5: each stage's dependency has the md5
    its producing stage's output recorded."""
    produced = {path: md5 for stage in back.stages.values() for path, md5 in stage.outs.items()}
    chain = [back.stage_of.get(core) for core in ("build_model", "evaluate_model")]
    if not all(chain) or len(back.stage_of) < len(STAGES):
        return False
    for name in chain:
        links = {p: md5 for p, md5 in back.stages[str(name)].deps.items() if p in produced}
        if not links or any(produced[p] != md5 for p, md5 in links.items()):
            return False
    return True


def run_state_clean(back: ProjectBack) -> bool:
    """``dvc status`` is clean and every pipeline stage has its dvc.lock entry."""
    ran = all(back.stages[name].outs for name in back.pipeline_stages)
    return not back.status and bool(back.pipeline_stages) and ran
