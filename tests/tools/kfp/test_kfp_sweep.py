"""The sweep on KFP: ``dsl.ParallelFor`` over the planned trials and a ``dsl.Collected`` fan-in,
run by kfp.local (2.17.3 runs loops itself, iterations in a thread pool); the compiled loop;
KFP's type checks, retries and task cache on the sweep's own components."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsbench.result import RunRequest, RunResult
from mlopsbench.tools.kfp import sweep
from mlopsbench.tools.kfp.adapter import EXECUTOR_OUTPUT, Outputs, _run_locally
from mlopsbench.tools.kfp.build import KfpSettings, compile_pipeline
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.sweep import stages
from mlopsbench.usecases.sweep.config import SweepConfig

IMAGE = "registry.example/mlopsbench:test"
# Small: 4 trials of the two MLPs, one epoch, 400 training images, a 10 % test split (t-SNE).
CFG = SweepConfig(
    trials=4,
    models="simple,deep",
    epochs=1,
    workers=2,
    threshold=0.3,
    data=DigitsDataConfig(limit_train=400, test_fraction=0.1),
)
PLAN = "mlopsbench.usecases.sweep.stages:plan_trials"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PLAN_EVENT = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) - \w+ - "
    r"(?:Task 'plan-sweep' finished with status (\w+)|(Executing) task 'plan-sweep')",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    out = tmp_path_factory.mktemp("kfp-sweep")
    return sweep.run(RunRequest(usecase="sweep", config=CFG, out_dir=out))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The core's own sequential sweep, no tool: the result KFP must reproduce."""
    out = tmp_path_factory.mktemp("core-sweep")
    data = stages.prepare_data(CFG, out)
    results = [stages.run_trial(CFG, data["data_path"], t, out) for t in stages.plan_trials(CFG)]
    return stages.select_best(results)


@pytest.mark.slow
@pytest.mark.capability("kfp", "fan_out_in", "dynamic_task_count")
def test_parallel_for_trials_fan_in_to_the_core_best(
    swept: RunResult, sequential: dict[str, Any]
) -> None:
    assert swept.status == "ok", swept.error
    info = swept.tool_info
    # The loop KFP ran: one iteration task per trial plan-sweep returned at run time.
    assert info["planned_by_kfp"] == CFG.trials
    assert sorted(info["trial_tasks"].values()) == [
        f"for-loop-1-iteration-{i}/run-sweep-trial" for i in range(CFG.trials)
    ]
    assert all(info["stage_tasks"].values()), info["stage_tasks"]
    # workers -> the loop's parallelism; kfp.local never runs more iterations at once.
    assert info["parallelism"] == CFG.workers == info["local_parallelism"]
    assert 1 <= info["max_concurrent_trials"] <= CFG.workers
    summary = info["sweep"]
    assert summary["finished"] == summary["stored_trials"] == CFG.trials
    assert summary["queryable"] is True
    # The fan-in chose what the core chooses from the same trials run one after another.
    assert summary["best"]["name"] == sequential["trial"]["name"]
    assert summary["best"]["accuracy"] == pytest.approx(sequential["metrics"]["accuracy"])
    assert swept.tool_info["sweep"]["best"]["index"] == sequential["trial"]["index"]
    # The evaluation scored the fan-in's copy of that trial's model.
    assert Path(swept.artifacts["best_model"], "model.safetensors").is_file()
    assert swept.gate["passed"] is True and swept.history
    # Past the quality gate (dsl.If), promote-model recorded the best trial's model.
    assert info["promoted"] is True
    promotion = json.loads(Path(swept.artifacts["promotion"]).read_text())
    assert promotion["model_dir"] == swept.artifacts["best_model"]


@pytest.mark.slow
def test_sweep_evidence_comes_from_the_pipeline_root(swept: RunResult, tmp_path: Path) -> None:
    assert sweep.evidence(swept) == dict.fromkeys(
        (
            "params",
            "per_epoch_metrics",
            "final_metrics",
            "model_artifact",
            "plots",
            "lineage",
            "run_state",
        ),
        True,
    )
    fake = RunResult.from_dict(
        {**swept.to_dict(), "tool_info": {"pipeline_run_dir": str(tmp_path)}}
    )
    assert not any(sweep.evidence(fake).values())


def test_trial_windows_overlap_and_cover() -> None:
    """How concurrency and KFP's overhead are judged from the trials' (start, end) windows."""
    windows = [(0.0, 4.0), (1.0, 3.0), (3.5, 6.0), (7.0, 8.0)]
    assert sweep.most_overlapping(windows) == 2
    assert sweep.covered_seconds(windows) == pytest.approx(7.0)
    assert sweep.most_overlapping([(0.0, 1.0), (1.0, 2.0)]) == 1  # one ends as the next starts
    assert sweep.most_overlapping([]) == 0 and sweep.covered_seconds([]) == 0.0


@pytest.mark.capability("kfp", "cluster_export")
def test_compiled_sweep_loops_over_the_plan_with_parallelism_and_collects(
    tmp_path: Path,
) -> None:
    from kfp import compiler

    from mlopsbench.tools.kfp.pipeline.sweep_pipeline import build_pipeline

    path = tmp_path / "sweep.yaml"
    compiler.Compiler().compile(build_pipeline(IMAGE, workers=3), package_path=str(path))
    spec = yaml.safe_load(path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    loop = tasks["for-loop-1"]
    items = loop["parameterIterator"]["items"]
    assert items == {"inputParameter": "pipelinechannel--plan-sweep-Output"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 3}
    assert set(loop["dependentTasks"]) == {"plan-sweep", "prepare-sweep-data"}
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]["run-sweep-trial"]
    assert inner["retryPolicy"]["maxRetryCount"] == 1
    # dsl.Collected: select-best-trial takes the loop's model outputs as one artifact list.
    select = tasks["select-best-trial"]
    assert select["inputs"]["artifacts"]["trials"] == {
        "taskOutputArtifact": {
            "outputArtifactKey": "pipelinechannel--run-sweep-trial-model",
            "producerTask": "for-loop-1",
        }
    }
    definition = spec["components"][select["componentRef"]["name"]]["inputDefinitions"]
    assert definition["artifacts"]["trials"]["isArtifactList"] is True
    from kfp import components

    assert components.load_component_from_file(str(path)).name == "mlopsbench-sweep"
    # ``mlopsbench kfp compile -u sweep`` finds the file by convention: the config's workers.
    default = compile_pipeline("sweep", KfpSettings(image=IMAGE), tmp_path / "default.yaml")
    loop = yaml.safe_load(default.read_text())["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["iteratorPolicy"] == {"parallelismLimit": SweepConfig().workers}


@pytest.mark.capability("kfp", "typed_parameters")
def test_kfp_refuses_mistyped_sweep_arguments_before_any_task(tmp_path: Path) -> None:
    """The pipeline's inputs are typed (the config's fields): KFP checks an argument's type
    when the run is requested, before a task starts."""
    import kfp.local
    from kfp.dsl.types.type_utils import InconsistentTypeException

    from mlopsbench.tools.kfp.pipeline.sweep_pipeline import build_pipeline

    root = tmp_path / "root"
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline = build_pipeline(IMAGE)
    for wrong in ({"trials": "four"}, {"threshold": "high"}, {"models": 3}):
        with pytest.raises(InconsistentTypeException, match="is incompatible with the input"):
            pipeline(**wrong)
    assert not root.exists() or not any(root.iterdir())


def _plan_pipeline(retry_backoff: str | None) -> Any:
    """The sweep's own data and plan components, plan after data (a small KFP pipeline)."""
    from kfp import dsl

    from mlopsbench.tools.kfp.pipeline.pipeline_helpers import lightweight_components
    from mlopsbench.tools.kfp.pipeline.sweep_pipeline import plan_sweep, prepare_sweep_data

    component = lightweight_components(IMAGE)

    def plan_only(settings: dict = {"trials": 4, "data_limit_train": 50}) -> None:  # noqa: B006
        data = component(prepare_sweep_data)(settings=settings)
        plan = component(plan_sweep)(settings=settings).after(data)
        if retry_backoff:
            plan.set_retry(num_retries=1, backoff_duration=retry_backoff)

    # KFP reads annotations as types: this module's are strings (``from __future__``).
    plan_only.__annotations__ = {"settings": dict, "return": None}
    return dsl.pipeline(name="sweep-plan")(plan_only)


@pytest.mark.slow
@pytest.mark.capability("kfp", "resume_cache", "retries_backoff")
def test_kfp_rerun_reuses_cached_steps_and_retries_a_transient_failure(
    tmp_path: Path, fail_stage: Callable[..., None]
) -> None:
    """Run 1: plan-sweep fails for good, after data finished. Run 2, same pipeline root with
    KFP's local cache: the data step is a cache hit (not run again); plan-sweep fails once
    more (a transient fault), KFP retries it after the 1 s backoff and it succeeds."""
    root = _root(tmp_path)
    fail_stage(PLAN, "RuntimeError")
    failed = _run_locally(_plan_pipeline(None), {}, root, tmp_path / "first", cache=True)
    assert failed.failure and "'plan-sweep'" in failed.failure
    assert (failed.run_dir / "prepare-sweep-data" / EXECUTOR_OUTPUT).is_file()

    fail_stage(PLAN, "RuntimeError", once=True)
    rerun = _run_locally(_plan_pipeline("1s"), {}, root, tmp_path / "again", cache=True)
    assert rerun.failure is None
    log = _ANSI.sub("", rerun.log_path.read_text())
    # Resume: the finished step was not run again; KFP wrote no new output for it.
    assert "Executing task 'prepare-sweep-data'" not in log
    assert not (rerun.run_dir / "prepare-sweep-data").exists()
    # Retry: the first attempt failed, KFP waited out the backoff and ran it again.
    assert "RuntimeError: injected failure in plan_trials" in log
    events = _plan_events(log)
    assert [state for _, state in events] == ["Executing", "FAILURE", "Executing", "SUCCESS"]
    assert events[2][0] - events[1][0] >= 1.0
    planned = Outputs.read(rerun.run_dir).tasks["plan-sweep"]["parameterValues"]["Output"]
    assert [t["name"] for t in planned] == [stages.trial_name(i) for i in range(4)]


def _plan_events(log: str) -> list[tuple[float, str]]:
    """(clock seconds, "Executing" or the status it finished with) of each plan-sweep event."""
    return [
        (int(h) * 3600 + int(m) * 60 + float(sec), finished or started)
        for h, m, sec, finished, started in _PLAN_EVENT.findall(log)
    ]


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    return root
