"""DVC's adapter: a DVC project per run, ``dvc repro``, then what DVC adds on top of a run.

``run(request)`` makes the run folder a committed git + DVC project holding the use case's
pipeline (``project.create_project``), runs ``dvc repro``, reads the project back through DVC
(``readback``), commits the results (``dvc.lock``), registers the model with GTO when it passed
its gate, then shows what DVC is for and records it in ``tool_info``:

* ``repro_check``: a second ``dvc repro`` with nothing changed, which must skip every stage;
* ``experiment``: ``dvc exp run --temp --set-param KEY=VALUE`` (default: a stricter gate,
  ``threshold`` + 0.05, so only ``evaluate`` reruns), read back from ``dvc exp show``; the
  workspace keeps the baseline;
* ``plots_html``: ``dvc plots show`` rendered to ``plots/index.html`` (DVC's only UI).

``request.options`` (strings): ``experiment`` (``KEY=VALUE``, or ``none`` to skip it; under
``compare``, which sets ``benchmark``, it is skipped unless asked for) and
``threads`` (OMP/MKL threads of the stage processes).

Timings: the core stages' own ``seconds`` (from what each stage returned, read through DVC's
file system); ``dvc_overhead``, the ``dvc repro`` process minus that core work and MLflow
logging (``tracking``); ``dvc_setup`` (git + DVC init, inputs, first commit), ``readback``,
``git_commit``, ``register``, ``repro_check``, ``experiment`` and ``plots_html`` apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.result import EVIDENCE_KEYS, RunRequest, RunResult
from mlopsbench.toolkit.record import RunRecorder, core_timings
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.dvc.project import (
    DvcRun,
    Project,
    check_git,
    commit_all,
    create_project,
    dvc_env,
    pipeline_file,
    project_values,
    run_dvc,
)
from mlopsbench.tools.dvc.readback import ProjectBack, read_project, recorded_evidence
from mlopsbench.usecases.common.usecase import UseCase
from mlopsbench.usecases.registry import get_usecase

PLOTS_DIR = "plots"
EXPERIMENT_NAME = "param-change"
NO_EXPERIMENT = ("", "none", "off", "false", "0")


@dataclass(frozen=True)
class Setting:
    """A ``--set-param`` for the experiment."""

    key: str
    value: Any

    @property
    def arg(self) -> str:
        return f"{self.key}={self.value}"


def run(request: RunRequest) -> RunResult:
    """Run the use case's DVC pipeline once and return the common result record."""
    recorder = RunRecorder("dvc", request, distributions=get_tool("dvc").distributions)
    experiment = _preflight(request, recorder.usecase)
    root = Path(request.out_dir).resolve()
    env = dvc_env(root, request.tracking_uri, request.options)
    with recorder.stage("dvc_setup"):
        project = create_project(root, recorder.usecase.name, request.config)
    repro = run_dvc(root, ["repro"], env, "repro", show=request.show_progress)
    with recorder.stage("readback"):
        back = read_project(root)
    if not repro.ok:
        return recorder.failed(repro.failure(), **_common(recorder, project, back, repro))
    extras = _after_repro(recorder, project, back, env, experiment)
    evaluation = back.reports.get("evaluate_model", {})
    model = back.reports.get("build_model", {})
    common = _common(recorder, project, back, repro)
    common["tool_info"].update(extras)
    if extras.get("plots_html"):
        common["artifacts"]["plots_html"] = extras["plots_html"]
    return recorder.finish(
        metrics=evaluation.get("metrics", {}),
        gate=evaluation.get("gate"),
        model=model.get("model_name"),
        **common,
    )


def evidence(result: RunResult) -> dict[str, bool]:
    """What DVC really recorded for this run, read from its project through DVC's API."""
    root = result.tool_info.get("run_dir")
    if not root or not (Path(root) / ".dvc").is_dir() or not (Path(root) / "dvc.lock").is_file():
        return dict.fromkeys(EVIDENCE_KEYS, False)
    usecase = get_usecase(result.usecase)
    expected = _expected_params(result, usecase)
    return recorded_evidence(
        read_project(Path(root)), usecase, expected, result.metrics.get("accuracy")
    )


# ---------------------------------------------------------------------------------------------
# before and after `dvc repro`
# ---------------------------------------------------------------------------------------------


def _preflight(request: RunRequest, usecase: UseCase) -> Setting | None:
    """Bad inputs, a missing git or pipeline and an unreachable tracking server fail here, in
    one line, before anything is written to the run folder."""
    usecase.check_inputs(request.config)
    if request.tracking_uri:
        from mlopsbench import tracking

        tracking.check_tracking_uri(request.tracking_uri)
    check_git()
    pipeline_file(usecase.name)
    root = Path(request.out_dir)
    if (root / ".dvc").exists() or (root / ".git").exists():
        raise ConfigError(f"{root} already holds a git or DVC project: give a fresh run folder")
    if request.options.get("benchmark") and "experiment" not in request.options:
        return None  # compare measures the pipeline, not the demonstration beside it
    return experiment_setting(request.config, request.options.get("experiment"))


def experiment_setting(cfg: Any, option: str | None) -> Setting | None:
    """The experiment's ``--set-param``: the option's ``KEY=VALUE``, else the gate moved by
    0.05 (stricter; looser above 0.95), which only the evaluate stage reads."""
    if option is None:
        threshold = float(cfg.threshold)
        stricter = round(threshold + 0.05, 4) if threshold <= 0.95 else round(threshold - 0.05, 4)
        return Setting("threshold", stricter)
    if option.strip().lower() in NO_EXPERIMENT:
        return None
    key, sep, value = option.partition("=")
    known = {spec.name for spec in _config_params(cfg)}
    if not sep or key.strip() not in known:
        raise ConfigError(
            f"experiment option {option!r}: expected KEY=VALUE with KEY one of the settings "
            f"({', '.join(sorted(known))}), or 'none'"
        )
    return Setting(key.strip(), value.strip())


def _config_params(cfg: Any) -> tuple[Any, ...]:
    from mlopsbench.usecases.common.params import config_params

    return config_params(type(cfg))


def _after_repro(
    recorder: RunRecorder,
    project: Project,
    back: ProjectBack,
    env: dict[str, str],
    experiment: Setting | None,
) -> dict[str, Any]:
    """Commit, register past the gate, the no-op check, the experiment, the plots page."""
    root = project.root
    with recorder.stage("git_commit"):
        commit = commit_all(root, f"dvc repro: {project.usecase}")
    with recorder.stage("register"):
        registration = register_past_gate(root, back)
    with recorder.stage("repro_check"):
        check = run_dvc(root, ["repro"], env, "repro-check")
    info: dict[str, Any] = {
        "commit": commit,
        "registered": registration,
        "repro_check": _repro_check(check, back),
    }
    if experiment is not None:
        with recorder.stage("experiment"):
            info["experiment"] = _experiment(root, env, experiment)
    with recorder.stage("plots_html"):
        info["plots_html"] = _plots_html(root, env)
    return info


def register_past_gate(root: Path, back: ProjectBack) -> dict[str, Any] | None:
    """GTO registers the model artifact of dvc.yaml only when the gate passed."""
    from mlopsbench.tools.dvc.pipeline.register_model import register_if_passed
    from mlopsbench.tools.dvc.readback import model_artifact_name, registered

    artifact = model_artifact_name(root)
    report = back.report_paths.get("evaluate_model")
    if artifact is None or report is None:
        return None
    tag = register_if_passed(str(root), artifact, report)
    if tag is None:
        return None
    return {"artifact": artifact, "tag": tag, **(registered(root, artifact) or {})}


def _repro_check(check: DvcRun, back: ProjectBack) -> dict[str, Any]:
    """A second ``dvc repro`` with nothing changed: which stages it skipped and ran."""
    stages = back.pipeline_stages
    return {
        "ok": check.ok,
        "ran": check.ran,
        "skipped": check.skipped,
        "up_to_date": check.ok and not check.ran and set(stages) <= set(check.skipped),
        "seconds": round(check.seconds, 3),
        "log": check.log,
    }


def _experiment(root: Path, env: dict[str, str], setting: Setting) -> dict[str, Any]:
    """``dvc exp run --temp``: the workspace keeps the baseline; MLflow is not logged again."""
    from mlopsbench.tools.dvc.readback import experiment_row

    quiet = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    args = ["exp", "run", "--temp", "--name", EXPERIMENT_NAME, "--set-param", setting.arg]
    done = run_dvc(root, args, quiet, "experiment")
    row = experiment_row(root, EXPERIMENT_NAME) if done.ok else None
    info: dict[str, Any] = {
        "name": EXPERIMENT_NAME,
        "set_param": setting.arg,
        "ok": done.ok and row is not None,
        "ran": done.ran,
        "skipped": done.skipped,
        "seconds": round(done.seconds, 3),
        "log": done.log,
    }
    if row is not None:
        info.update(rev=row.get("rev"), params={setting.key: _column(row, setting.key)})
        info["accuracy"] = _column(row, "accuracy")
    elif not done.ok:
        info["error"] = done.failure()
    return info


def _column(row: dict[str, Any], name: str) -> Any:
    """A column of ``dvc exp show``: ``name``, or ``<file>:name`` when two files share it."""
    if name in row:
        return row[name]
    return next((v for k, v in row.items() if k.rsplit(":", 1)[-1] == name), None)


def _plots_html(root: Path, env: dict[str, str]) -> str | None:
    """``dvc plots show -o plots``: the static page that is DVC's UI (None if it failed)."""
    done = run_dvc(root, ["plots", "show", "-o", PLOTS_DIR], env, "plots")
    page = root / PLOTS_DIR / "index.html"
    return str(page) if done.ok and page.is_file() else None


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------


def _common(
    recorder: RunRecorder, project: Project, back: ProjectBack, repro: DvcRun
) -> dict[str, Any]:
    return {
        "artifacts": _artifacts(project, back),
        "tool_info": _tool_info(project, back, repro),
        "history": back.reports.get("build_model", {}).get("history", []),
        "timings": _timings(recorder.usecase, back, repro),
    }


def _timings(usecase: UseCase, back: ProjectBack, repro: DvcRun) -> dict[str, float]:
    """Core seconds from what the stages returned; the rest of ``dvc repro`` is DVC's.

    Every report in the project was written by this repro (the project is new), so all of
    them time this run. MLflow logging in the evaluate stage reports its own seconds.
    """
    timings = core_timings(usecase, back.reports)
    tracking = back.mlflow.get("seconds")
    if isinstance(tracking, int | float):
        timings["tracking"] = float(tracking)
    timings["dvc_overhead"] = max(repro.seconds - sum(timings.values()), 0.0)
    return timings


def _artifacts(project: Project, back: ProjectBack) -> dict[str, str]:
    """Files the stages wrote (in the project) and DVC's own files."""
    root = project.root
    dataset = back.reports.get("prepare_data", {})
    model = back.reports.get("build_model", {})
    found = {
        "data": dataset.get("data_path"),
        "model": model.get("model_dir"),
        "history": model.get("history_path"),
        **back.reports.get("evaluate_model", {}).get("artifacts", {}),
        "dvc_yaml": "dvc.yaml",
        "dvc_lock": "dvc.lock" if (root / "dvc.lock").is_file() else None,
        "params": "params.yaml",
    }
    return {name: str(root / path) for name, path in found.items() if path}


def _tool_info(project: Project, back: ProjectBack, repro: DvcRun) -> dict[str, Any]:
    dataset = back.reports.get("prepare_data", {})
    model = back.reports.get("build_model", {})
    evaluation = back.reports.get("evaluate_model", {})
    info: dict[str, Any] = {
        "run_dir": str(project.root),
        "pipeline_commit": project.commit,
        "stages": {core: back.stage_of[core] for core in back.stage_of},
        "repro": {"ran": repro.ran, "skipped": repro.skipped, "log": repro.log},
        "lineage": _lineage(back),
        "inputs": project.inputs,
        "dataset": {k: v for k, v in dataset.items() if k not in ("data_path", "seconds")},
        "mlflow": back.mlflow,
        **{k: model[k] for k in ("precision", "device") if k in model},  # digits
    }
    if evaluation.get("inference"):  # sentiment: precision actually used, throughput
        info["inference"] = evaluation["inference"]
    return info


def _lineage(back: ProjectBack) -> dict[str, str]:
    """md5 of the data file and the model folder, as dvc.lock recorded them."""
    found: dict[str, str] = {}
    data_path = back.reports.get("prepare_data", {}).get("data_path")
    data_stage = back.stages.get(back.stage_of.get("prepare_data", ""))
    if data_stage is not None and data_path in data_stage.outs:
        found["data"] = f"{data_path} md5:{data_stage.outs[data_path]}"
    model_out = back.model_out()
    model_stage = back.stages.get(back.stage_of.get("build_model", ""))
    if model_out and model_stage is not None:
        found["model"] = f"{model_out} md5:{model_stage.outs[model_out]}"
    return found


def _expected_params(result: RunResult, usecase: UseCase) -> dict[str, Any]:
    """The run's config as params.yaml should hold it: local paths point into the project."""
    cfg = usecase.config(dict(result.params))
    inputs = result.tool_info.get("inputs") or {}
    return usecase.config(project_values(cfg, inputs)).to_dict()
