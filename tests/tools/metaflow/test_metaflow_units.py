"""Fast checks of the Metaflow adapter and the flow helpers: no flow run is started here."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.result import RunRequest, RunResult
from mlopsbench.toolkit.registry import get_tool
from mlopsbench.tools.metaflow import adapter, launch, readback
from mlopsbench.tools.metaflow.pipeline import flow_helpers
from mlopsbench.usecases.common.params import config_params, to_params
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import all_usecases
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sweep.config import SweepConfig

PIPELINE = get_tool("metaflow").pipeline_folder
HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter"
)


def _no_user(monkeypatch: pytest.MonkeyPatch, getuser: str | None = None) -> None:
    for name in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)

    def fake_getuser() -> str:
        if getuser is None:
            raise OSError("no passwd entry")
        return getuser

    monkeypatch.setattr(launch.getpass, "getuser", fake_getuser)


# ---------------------------------------------------------------------------------------------
# the pipeline folder
# ---------------------------------------------------------------------------------------------


def test_pipeline_holds_no_harness_plumbing() -> None:
    """pipeline/ is what a Metaflow user copies: no timing, no fault injection, no bookkeeping."""
    files = get_tool("metaflow").pipeline_files()
    assert {p.name for p in files} >= {"digits_flow.py", "sentiment_flow.py"}
    for path in files:
        found = HARNESS_PLUMBING.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


@pytest.mark.parametrize("usecase", [u.name for u in all_usecases()])
def test_every_use_case_has_its_flow(usecase: str) -> None:
    assert launch.flow_file(usecase) == PIPELINE / f"{usecase}_flow.py"


def test_a_use_case_without_a_flow_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"no Metaflow flow for the weather use case"):
        launch.flow_file("weather")


@pytest.mark.parametrize(
    ("usecase", "cfg"),
    [
        ("digits", DigitsConfig(model="deep", epochs=2, data=DigitsDataConfig(limit_train=100))),
        ("sentiment", SentimentConfig(smoke=True)),
        ("sweep", SweepConfig(trials=3, models="simple,deep", workers=2)),
    ],
)
def test_runner_values_are_exactly_the_flow_parameters(
    usecase: str, cfg: Any, declared_parameters: Callable[[str], dict[str, Any]]
) -> None:
    """Every value the adapter passes is a Parameter of the flow, and vice versa; every core
    setting is one (a field added to a config reaches the flow with no edit here)."""
    declared = declared_parameters(usecase)
    params = launch.flow_parameters(cfg, "sqlite:///x.db")
    assert set(params) == set(declared)
    assert set(declared) == {spec.name for spec in config_params(type(cfg))} | {"mlflow_uri"}
    assert params["mlflow_uri"] == f"sqlite:///{Path('x.db').resolve()}"  # steps run elsewhere
    assert launch.flow_parameters(cfg, None)["mlflow_uri"] == ""


def test_parameters_carry_the_core_defaults_types_and_help(
    declared_parameters: Callable[[str], dict[str, Any]],
) -> None:
    declared = declared_parameters("digits")
    for spec in config_params(DigitsConfig):
        parameter = declared[spec.name]
        assert parameter.kwargs["default"] == spec.tool_default, spec.name
        assert parameter.kwargs["type"] is spec.kind, spec.name
        assert parameter.kwargs["help"] == spec.description, spec.name
    assert declared["data_limit_train"].kwargs["default"] == 0  # None -> the unset value


def test_a_changed_core_default_reaches_the_flow(
    monkeypatch: pytest.MonkeyPatch, declared_parameters: Callable[[str], dict[str, Any]]
) -> None:
    """Change a default in the core config only: the flow's Parameter follows."""
    field = DigitsConfig.__dataclass_fields__["epochs"]
    monkeypatch.setattr(field, "default", field.default + 6)
    assert declared_parameters("digits")["epochs"].kwargs["default"] == field.default


def test_a_changed_core_default_shows_in_run_help(tmp_path: Path) -> None:
    """The same through the flow's own CLI (``run --help``), as a user would look it up."""
    flow = launch.flow_file("digits")
    script = (
        "import runpy, sys\n"
        "from mlopsbench.usecases.digits.config import DigitsConfig\n"
        "DigitsConfig.__dataclass_fields__['epochs'].default = 11\n"
        f"sys.argv = [{str(flow)!r}, '--quiet', 'run', '--help']\n"
        f"runpy.run_path({str(flow)!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = " ".join(done.stdout.split())
    assert re.search(r"--epochs INTEGER Training epochs\. \[default: 11\]", text), text
    for spec in config_params(DigitsConfig):
        assert f"--{spec.name} " in text, spec.name


@pytest.mark.parametrize(
    "cfg",
    [
        DigitsConfig(model="deep", data=DigitsDataConfig(limit_train=70, split_seed=3)),
        SentimentConfig(smoke=True, sample_size=40, fine_tune_epochs=3),
        SentimentConfig(source="hf", fine_tune=True),
    ],
)
def test_flow_config_rebuilds_the_core_config(cfg: Any) -> None:
    """What the flow gets as Parameter values rebuilds exactly the config they came from."""
    flow = SimpleNamespace(**to_params(cfg))
    assert flow_helpers.flow_config(flow, type(cfg)) == cfg


def test_model_folder_round_trips_through_an_artifact(tmp_path: Path) -> None:
    """The artifact form (file name -> bytes) rebuilds a model folder the core loads."""
    import torch

    from mlopsbench.usecases.digits import storage
    from mlopsbench.usecases.digits.models import build_model

    model = build_model("simple")
    files = flow_helpers.folder_to_artifact(storage.save_model(model, "simple", tmp_path / "a"))
    assert set(files) == {storage.WEIGHTS_FILE, storage.SPEC_FILE}
    restored = storage.load_model(flow_helpers.folder_from_artifact(files, tmp_path / "b"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key])


def test_folder_artifact_never_writes_outside(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    files = flow_helpers.folder_to_artifact(tmp_path / "src")
    assert files == {"config.json": b"{}"}
    flow_helpers.folder_from_artifact({"../evil.txt": b"x", **files}, tmp_path / "dst")
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["config.json", "evil.txt"]
    assert not (tmp_path / "evil.txt").exists()


def test_file_and_json_artifacts(tmp_path: Path) -> None:
    (tmp_path / "data.npz").write_bytes(b"\x00\x01")
    data = flow_helpers.file_to_artifact(tmp_path / "data.npz")
    restored = flow_helpers.file_from_artifact(data, tmp_path / "step" / "data.npz")
    assert Path(restored).read_bytes() == b"\x00\x01"
    path = flow_helpers.json_from_artifact([{"epoch": 1}], tmp_path / "history.json")
    assert json.loads(Path(path).read_text()) == [{"epoch": 1}]
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically, nothing left over


def test_mlflow_uri_parameter_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert flow_helpers.mlflow_tracking_uri("") == ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert flow_helpers.mlflow_tracking_uri("") == "sqlite:///env.db"
    assert flow_helpers.mlflow_tracking_uri("sqlite:///param.db") == "sqlite:///param.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # what the adapter sets: the Parameter decides
    assert flow_helpers.mlflow_tracking_uri("") == ""


# ---------------------------------------------------------------------------------------------
# the adapter
# ---------------------------------------------------------------------------------------------


def test_missing_user_falls_back_to_the_project_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_user(monkeypatch)
    assert launch.resolve_user({}) == "mlopsbench"  # as `compare` does; a notice on stderr


def test_root_is_not_a_metaflow_user(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_user(monkeypatch, getuser="root")  # Metaflow itself refuses 'root'
    assert launch.resolve_user({}) == "mlopsbench"
    monkeypatch.setenv("USER", "alice")
    assert launch.resolve_user({}) == "alice"
    assert launch.resolve_user({"metaflow_user": "bench"}) == "bench"


def test_explicit_root_user_fails_before_any_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_user(monkeypatch)
    monkeypatch.setenv("METAFLOW_USER", "root")
    request = RunRequest("digits", DigitsConfig(model="simple", epochs=1), tmp_path / "run")
    with pytest.raises(ConfigError):
        adapter.run(request)
    assert not (tmp_path / "run").exists()


def test_bad_data_path_fails_before_any_process(tmp_path: Path) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    request = RunRequest("digits", cfg, tmp_path / "run")
    with pytest.raises(DataError, match=r"missing\.npz"):
        adapter.run(request)
    assert not (tmp_path / "run" / ".metaflow").exists()


def test_unknown_usecase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown use case"):
        adapter.run(RunRequest("weather", DigitsConfig(), tmp_path))


def test_flow_env_is_isolated(tmp_path: Path) -> None:
    env = launch.flow_env(tmp_path, "bench", {"threads": "1"})
    assert env["METAFLOW_USER"] == "bench"
    assert env["METAFLOW_CLIENT_CACHE_PATH"].startswith(str(tmp_path))
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == ""  # the flow logs only when told via mlflow_uri


def test_card_components_are_decoded() -> None:
    payload = {
        "components": [
            {"type": "markdown", "source": "# t"},
            {"type": "image", "src": "data:image/png;base64,AAAA", "label": "Confusion matrix"},
            {"type": "image", "src": "https://example.invalid/x.png", "label": "remote"},
        ]
    }
    blob = base64.b64encode(json.dumps(payload).encode()).decode()
    html = f'<script>window.__MF_DATA__["abc-1"] = "{blob}";</script>'
    assert readback.card_images(html) == ["Confusion matrix"]
    assert [c["type"] for c in readback.card_components(html)].count("image") == 2
    assert readback.card_images("<html>no card data</html>") == []


def _step(name: str, started: float, finished: float, cloned: str | None = None) -> Any:
    return readback.StepTask(name, f"DigitsFlow/7/{name}/1", started, finished, True, cloned)


def _back(**changes: Any) -> readback.RunBack:
    back = readback.RunBack(
        run_id="7",
        pathspec="DigitsFlow/7",
        successful=True,
        origin=None,
        steps={
            "start": _step("start", 100.5, 101.0),
            "load_data": _step("load_data", 101.5, 103.0),
            "train": _step("train", 103.2, 106.7),
        },
        stage_steps={"prepare_data": "load_data", "build_model": "train"},
        outputs={"prepare_data": {"seconds": 1.0}, "build_model": {"seconds": 3.0}},
    )
    return dataclasses.replace(back, **changes)


def test_failure_message_is_one_line() -> None:
    class Wrapped:
        type = "mlopsbench.errors.DataError"
        exception = "first line\ncorrupt digits file: bad header"

    error = adapter.failure_message(_back(failure=("load_data", Wrapped())), "")
    assert error == (
        "metaflow run DigitsFlow/7 failed in step load_data: DataError: "
        "corrupt digits file: bad header"
    )
    assert adapter.failure_message(_back(), "Killed") == "metaflow run DigitsFlow/7 failed: Killed"


def test_step_timings_separate_core_from_overhead() -> None:
    back = _back()
    back.steps["train"] = _step("train", 103.2, 106.7, cloned="DigitsFlow/1/train/3")
    table = readback.step_timings(back)
    assert table["start"] == {
        "seconds": 0.5,
        "core_seconds": 0.0,
        "overhead_s": 0.5,
        "cloned": False,
    }
    assert table["load_data"]["overhead_s"] == pytest.approx(0.5)
    # A cloned step (resume) did no core work in this run.
    assert table["train"]["core_seconds"] == 0.0 and table["train"]["cloned"]
    assert back.fresh_outputs == {"prepare_data": {"seconds": 1.0}}


def test_overhead_breakdown_from_task_timestamps() -> None:
    parts = readback.overhead_breakdown(_back(), launched=100.0, returned=107.0)
    assert parts == pytest.approx(
        {"launch_s": 0.5, "in_steps_s": 0.5 + 0.5 + 0.5, "between_steps_s": 0.7, "after_s": 0.3}
    )


def test_most_at_once_counts_overlapping_task_windows() -> None:
    def task(started: float, finished: float | None) -> readback.ForeachTask:
        return readback.ForeachTask("F/1/s/1", 0, started, finished, True, 0, None)

    assert readback.most_at_once([]) == 0
    assert readback.most_at_once([task(0, 2), task(2, 4)]) == 1  # touching: one after the other
    assert readback.most_at_once([task(0, 3), task(1, 4), task(2, 5), task(4, 6)]) == 3
    assert readback.most_at_once([task(0, 3), task(1, None)]) == 1  # unfinished: not counted


def test_timings_come_from_the_stage_artifacts() -> None:
    """Core seconds as the stages reported them; the rest of the launch is Metaflow's own."""
    from mlopsbench.usecases.registry import get_usecase

    launched = launch.Launched(None, 100.0, 107.0, seconds=7.5, error="")
    timings = adapter._timings(get_usecase("digits"), _back(), launched)
    assert timings == pytest.approx({"data": 1.0, "train": 3.0, "metaflow_overhead": 3.5})
    # MLflow logging is timed only when the shared helper reports its own seconds.
    logged = _back(mlflow={"run_id": "r", "seconds": 2.0})
    timings = adapter._timings(get_usecase("digits"), logged, launched)
    assert timings["tracking"] == 2.0 and timings["metaflow_overhead"] == pytest.approx(1.5)


def test_evidence_of_a_run_without_datastore(tmp_path: Path) -> None:
    result = RunResult(
        tool="metaflow",
        usecase="digits",
        model="simple",
        params={},
        tool_info={"pathspec": "DigitsFlow/1", "run_dir": str(tmp_path)},
    )
    found = adapter.evidence(result)
    assert set(found) == {
        "params",
        "per_epoch_metrics",
        "final_metrics",
        "model_artifact",
        "plots",
        "lineage",
        "run_state",
    }
    assert not any(found.values())


def test_runner_import_keeps_torch_importable() -> None:
    """Metaflow's Runner patches typing; a class shaped like torch's flat_apply must still work.

    Without the guard in ``import_runner``, ``import torch`` after the Runner raises
    "Type parameter ~_R without a default follows type parameter with a default". The class
    below is the construct torch trips on, without paying for a torch import.
    """
    code = (
        "import typing_extensions\n"  # imported first, as rich/typer/pytest do
        "from mlopsbench.tools.metaflow import launch\n"
        "launch.import_runner()\n"
        "from typing import Generic, TypeVar\n"
        "from typing_extensions import ParamSpec\n"
        "_R, _P = TypeVar('_R'), ParamSpec('_P')\n"
        "class ConstantFunction(Generic[_P, _R]): ...\n"
        "print('typing ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "typing ok" in done.stdout
