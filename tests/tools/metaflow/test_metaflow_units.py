"""Fast checks of the Metaflow runner and flow helpers: no flow process is started here."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError, DataError
from mlopsbench.result import RunRequest
from mlopsbench.tools.metaflow import flow_support, runner
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


def _no_user(monkeypatch: pytest.MonkeyPatch, getuser: str | None = None) -> None:
    for name in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER", "LOGNAME"):
        monkeypatch.delenv(name, raising=False)

    def fake_getuser() -> str:
        if getuser is None:
            raise OSError("no passwd entry")
        return getuser

    monkeypatch.setattr(runner.getpass, "getuser", fake_getuser)


def test_missing_user_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_user(monkeypatch)
    with pytest.raises(ConfigError, match="METAFLOW_USER"):
        runner.resolve_user({})


def test_root_is_not_a_metaflow_user(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_user(monkeypatch, getuser="root")  # Metaflow itself refuses 'root'
    with pytest.raises(ConfigError, match="root"):
        runner.resolve_user({})
    monkeypatch.setenv("USER", "alice")
    assert runner.resolve_user({}) == "alice"
    assert runner.resolve_user({"metaflow_user": "bench"}) == "bench"


def test_missing_user_fails_before_any_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_user(monkeypatch)
    request = RunRequest("digits", DigitsConfig(model="simple", epochs=1), tmp_path / "run")
    with pytest.raises(ConfigError):
        runner.run(request)
    assert not (tmp_path / "run").exists()


def test_bad_data_path_fails_before_any_process(tmp_path: Path) -> None:
    cfg = DigitsConfig(data=DigitsDataConfig(source="npz", path=str(tmp_path / "missing.npz")))
    request = RunRequest("digits", cfg, tmp_path / "run")
    with pytest.raises(DataError, match=r"missing\.npz"):
        runner.run(request)
    assert not (tmp_path / "run" / ".metaflow").exists()


def test_unknown_usecase(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown use case"):
        runner.run(RunRequest("weather", DigitsConfig(), tmp_path))


def test_digits_parameters_match_the_flow() -> None:
    """Every value the runner passes is a Parameter of DigitsFlow, and vice versa."""
    from metaflow import Parameter

    from mlopsbench.tools.metaflow.digits_flow import DigitsFlow

    declared = {n for n, v in vars(DigitsFlow).items() if isinstance(v, Parameter)}
    cfg = DigitsConfig(model="deep", epochs=2, data=DigitsDataConfig(limit_train=100))
    params = runner.flow_parameters("digits", cfg, "sqlite:///x.db")
    assert set(params) == declared
    assert params["model"] == "deep" and params["limit_train"] == 100
    assert params["mlflow_uri"] == "sqlite:///x.db"
    assert runner.flow_parameters("digits", DigitsConfig(), None)["mlflow_uri"] == ""


def test_flow_env_is_isolated(tmp_path: Path) -> None:
    request = RunRequest("digits", DigitsConfig(), tmp_path, options={"fail_step": "evaluate"})
    env = runner.flow_env(tmp_path, "bench", request)
    assert env["METAFLOW_USER"] == "bench"
    assert env["METAFLOW_CLIENT_CACHE_PATH"].startswith(str(tmp_path))
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env[flow_support.FAIL_STEP_ENV] == "evaluate"
    assert env["MLFLOW_TRACKING_URI"] == ""  # the flow logs only when told via mlflow_uri


def test_inject_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(flow_support.FAIL_STEP_ENV, "train")
    flow_support.inject_failure("evaluate")  # another step: no effect
    with pytest.raises(RuntimeError, match="injected failure in step 'train'"):
        flow_support.inject_failure("train")


def test_check_data_path(tmp_path: Path) -> None:
    flow_support.check_data_path(None)
    flow_support.check_data_path(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        flow_support.check_data_path(str(tmp_path / "nope"))


def test_model_bytes_round_trip_through_core_storage(tmp_path: Path) -> None:
    """The artifact form (state_dict bytes + config) rebuilds a model the core loads."""
    import torch

    from mlopsbench.usecases.digits import storage
    from mlopsbench.usecases.digits.models import build_model

    assert (flow_support.WEIGHTS_FILE, flow_support.SPEC_FILE) == (
        storage.WEIGHTS_FILE,
        storage.SPEC_FILE,
    )
    model = build_model("simple")
    saved = storage.save_model(model, "simple", tmp_path / "a")
    weights, config = flow_support.read_model(saved)
    assert isinstance(weights, bytes) and config["architecture"] == "simple"
    restored = storage.load_model(flow_support.write_model(weights, config, tmp_path / "b"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key])


def test_folder_artifact_never_writes_outside(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    files = flow_support.folder_to_artifact(tmp_path / "src")
    assert files == {"config.json": b"{}"}
    flow_support.folder_from_artifact({"../evil.txt": b"x", **files}, tmp_path / "dst")
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["config.json", "evil.txt"]
    assert not (tmp_path / "evil.txt").exists()


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
    assert runner.card_images(html) == ["Confusion matrix"]
    assert [c["type"] for c in runner.card_components(html)].count("image") == 2
    assert runner.card_images("<html>no card data</html>") == []


def test_failure_status_is_one_line() -> None:
    class Wrapped:
        type = "mlopsbench.errors.DataError"
        exception = "first line\ncorrupt digits file: bad header"

    back = {"successful": False, "failure": ("load_data", Wrapped()), "pathspec": "DigitsFlow/7"}
    status, error = runner._status(back, {}, "")
    assert status == "failed"
    assert error == (
        "metaflow run DigitsFlow/7 failed in step load_data: DataError: "
        "corrupt digits file: bad header"
    )
    assert "\n" not in error
    ok = {"successful": True, "failure": None, "pathspec": "DigitsFlow/8"}
    assert runner._status(ok, {"gate": {"passed": False}}, "") == (
        "gate_failed",
        "quality gate failed",
    )
    assert runner._status(ok, {"gate": {"passed": True}}, "") == ("ok", None)


def test_step_timings_separate_core_from_overhead() -> None:
    steps = {
        "start": {"seconds": 0.5, "cloned_from": None},
        "train": {"seconds": 6.0, "cloned_from": "DigitsFlow/1/train/3"},
        "evaluate": {"seconds": 4.0, "cloned_from": None},
    }
    table = runner._step_timings(steps, {"train": 5.0, "evaluate": 3.5})
    assert table["start"] == {
        "seconds": 0.5,
        "core_seconds": 0.0,
        "overhead_s": 0.5,
        "cloned": False,
    }
    assert table["evaluate"]["overhead_s"] == pytest.approx(0.5)
    assert table["train"]["core_seconds"] == 0.0 and table["train"]["cloned"]


def test_evidence_of_a_run_without_datastore(tmp_path: Path) -> None:
    from mlopsbench.result import RunResult

    result = RunResult(
        tool="metaflow",
        usecase="digits",
        model="simple",
        params={},
        tool_info={"pathspec": "DigitsFlow/1", "run_dir": str(tmp_path)},
    )
    found = runner.evidence(result)
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
    import subprocess
    import sys

    code = (
        "import typing_extensions\n"  # imported first, as rich/typer/pytest do
        "from mlopsbench.tools.metaflow import runner\n"
        "runner.import_runner()\n"
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


def test_sentiment_parameters_match_the_flow() -> None:
    from metaflow import Parameter

    from mlopsbench.tools.metaflow.sentiment_flow import SentimentFlow
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    declared = {n for n, v in vars(SentimentFlow).items() if isinstance(v, Parameter)}
    params = runner.flow_parameters("sentiment", SentimentConfig(smoke=True), None)
    assert set(params) == declared
    assert params["smoke"] is True
    explicit = SentimentConfig(smoke=True, source="fixture")
    assert runner.flow_parameters("sentiment", explicit, None)["data_source"] == "fixture"
    assert params["sample_size"] == 0  # None -> 0: the flow's "use the core default"


def test_overhead_breakdown_from_task_timestamps() -> None:
    back = {
        "data": {"stage_seconds": {"data": 1.0, "train": 3.0}},
        "steps": {
            "start": {"started": 100.5, "finished": 101.0, "cloned_from": None},
            "load_data": {"started": 101.5, "finished": 103.0, "cloned_from": None},
            "train": {"started": 103.2, "finished": 106.7, "cloned_from": None},
        },
    }
    parts = runner.overhead_breakdown(back, launched=100.0, returned=107.0)
    assert parts == pytest.approx(
        {"launch_s": 0.5, "in_steps_s": 0.5 + 0.5 + 0.5, "between_steps_s": 0.7, "after_s": 0.3}
    )


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_every_core_config_field_reaches_the_flow(usecase: str) -> None:
    """A field added to the core config must get a flow Parameter (else runs silently differ)."""
    from dataclasses import fields

    if usecase == "digits":
        cfg: object = DigitsConfig(data=DigitsDataConfig(limit_train=70, split_seed=3))
        names = {f.name for f in fields(DigitsConfig) if f.name != "data"}
        names |= {f"data_{f.name}" for f in fields(DigitsDataConfig)}
    else:
        from mlopsbench.usecases.sentiment.config import SentimentConfig

        cfg = SentimentConfig(smoke=True)
        names = {f.name for f in fields(SentimentConfig)}
    aliases = {
        "data_test_fraction": "test_fraction",
        "data_split_seed": "split_seed",
        "data_limit_train": "limit_train",
        "source": "data_source",
    }
    params = runner.flow_parameters(usecase, cfg, None)
    assert {aliases.get(n, n) for n in names} <= set(params)


def test_mlflow_uri_parameter_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert flow_support.mlflow_tracking_uri("") == ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert flow_support.mlflow_tracking_uri("") == "sqlite:///env.db"
    assert flow_support.mlflow_tracking_uri("sqlite:///param.db") == "sqlite:///param.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # what the runner sets: the Parameter decides
    assert flow_support.mlflow_tracking_uri("") == ""
