"""The MLflow digits pipeline through its adapter, read back from MLflow's own store with
MlflowClient: the record, the run, the registry, failures, bad input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import PASSING, Store
from mlopsbench import tracking
from mlopsbench.errors import ConfigError, DataError, ServerError
from mlopsbench.result import RunResult
from mlopsbench.support.net import free_port
from mlopsbench.tools.mlflow import adapter
from mlopsbench.usecases.digits import stages as digits_stages
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig


def test_passed_run_record(passed_run: RunResult, store: Store) -> None:
    assert passed_run.status == "ok", passed_run.error
    info = passed_run.tool_info
    assert info["tracking_uri"] == store.uri  # default store: <runs>/mlflow/mlflow.db
    assert info["model_name"] == "digits-simple"
    assert info["model_uri"] == f"models:/digits-simple/{info['model_version']}"
    assert info["promoted"] is True
    assert info["champion_version"] == info["model_version"]
    assert passed_run.gate is not None and passed_run.gate["passed"]
    # The validation step scored the registry's copy: same accuracy as the in-process model.
    assert passed_run.metrics["validation_accuracy"] == pytest.approx(
        passed_run.metrics["accuracy"]
    )
    for stage in (
        "import",
        "data",
        "train",
        "evaluate",
        "tracking",
        "model_logging",
        "registry",
        "validate",
    ):
        assert passed_run.timings[stage] > 0, stage
    assert (store.root / "mlflow" / "artifacts").is_dir()  # not ./mlruns


@pytest.mark.capability("mlflow", "mlflow_tracking")
def test_run_contents_in_store(passed_run: RunResult, store: Store) -> None:
    client = store.client()
    run = client.get_run(passed_run.tool_info["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "mlopsbench-digits"
    assert set(run.data.params) == set(PASSING.to_dict())  # nothing else leaks into params
    assert run.data.params["model"] == "simple" and run.data.params["epochs"] == "1"
    assert run.data.params["threshold"] == "0.5"
    assert run.data.metrics["accuracy"] == pytest.approx(passed_run.metrics["accuracy"])
    assert {"f1_0", "precision_9", "recall_5", "macro_f1", "loss"} <= set(run.data.metrics)
    assert run.data.tags["mlopsbench.tool"] == "mlflow"
    assert run.data.tags["version.mlflow"] and run.data.tags["version.torch"]
    assert run.data.tags["validation_status"] == "approved"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [1]
    assert history[0].value == pytest.approx(passed_run.history[0]["test_accuracy"])
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/training_curve.png", "plots/tsne.png"} <= plots
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == passed_run.tool_info["dataset"]["digest"]
    assert dataset_input.dataset.name == "digits:sklearn:load_digits"
    assert '"n_train": 1437' in dataset_input.dataset.profile
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


@pytest.mark.capability("mlflow", "mlflow_registry")
def test_registry_version_and_alias(passed_run: RunResult, store: Store) -> None:
    client = store.client()
    version = passed_run.tool_info["model_version"]
    mv = client.get_model_version("digits-simple", version)
    assert mv.status == "READY" and mv.run_id == passed_run.tool_info["run_id"]
    assert mv.tags["validation_status"] == "approved"
    assert str(client.get_model_version_by_alias("digits-simple", "champion").version) == version


def test_model_is_a_pyfunc_over_safetensors(passed_run: RunResult, store: Store) -> None:
    from mlflow.models import Model

    tracking.use_tracking_uri(store.uri)
    model = tracking.load_registered_model("models:/digits-simple@champion")
    meta = model.metadata
    assert meta.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert meta.signature is not None and meta.saved_input_example_info is not None
    local = Path(
        tracking.import_mlflow().artifacts.download_artifacts(passed_run.tool_info["model_uri"])
    )
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert {"model.safetensors", "model.json", tracking.PYFUNC_SPEC} <= files
    assert not any(f.endswith((".pkl", ".pt", ".pickle")) for f in files)
    assert "mlflow" in (local / "requirements.txt").read_text()
    assert isinstance(Model.load(local), Model)
    data = np.load(passed_run.artifacts["data"])
    from mlopsbench.usecases.digits.evaluate import predict
    from mlopsbench.usecases.digits.storage import load_model

    expected = predict(load_model(passed_run.artifacts["model"]), data["x_test"][:32])
    assert np.array_equal(model.predict(data["x_test"][:32]), expected)


def test_evidence_all_true(passed_run: RunResult) -> None:
    assert adapter.evidence(passed_run) == dict.fromkeys(adapter.EVIDENCE_KEYS, True)


def test_gate_failure_leaves_alias_and_tags_rejected(
    passed_run: RunResult, rejected_run: RunResult, store: Store
) -> None:
    assert rejected_run.status == "gate_failed"
    assert "quality gate failed" in (rejected_run.error or "").lower()
    info = rejected_run.tool_info
    assert info["promoted"] is False and info["validation_status"] == "rejected"
    assert (
        info["previous_champion"]
        == info["champion_version"]
        == passed_run.tool_info["model_version"]
    )
    client = store.client()
    mv = client.get_model_version("digits-simple", info["model_version"])
    assert mv.tags["validation_status"] == "rejected"
    assert "FAILED" in mv.tags["validation_message"]
    champion = client.get_model_version_by_alias("digits-simple", "champion")
    assert str(champion.version) == passed_run.tool_info["model_version"]
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["validation_status"] == "rejected"
    assert adapter.evidence(rejected_run)["run_state"] is True


def test_crash_mid_training_ends_run_failed(
    passed_run: RunResult, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("simulated crash in epoch 1")

    monkeypatch.setattr(digits_stages, "build_model", crash)
    client = store.client()
    versions_before = len(client.search_model_versions("name='digits-simple'"))
    result = adapter.run(store.request("digits-crash", PASSING))
    assert result.status == "failed"
    assert "simulated crash" in (result.error or "") and "\n" not in (result.error or "")
    run = client.get_run(result.tool_info["run_id"])
    assert run.info.status == "FAILED"
    assert "simulated crash" in run.data.tags["mlopsbench.error"]
    assert run.data.params["model"] == "simple"  # params were logged before training started
    assert len(client.search_model_versions("name='digits-simple'")) == versions_before
    champion = client.get_model_version_by_alias("digits-simple", "champion")
    assert str(champion.version) == passed_run.tool_info["model_version"]
    assert adapter.evidence(result)["run_state"] is True


def test_user_error_mid_run_raises_one_line_and_ends_failed(store: Store, tmp_path: Path) -> None:
    # The file exists (the up-front input check passes) but is no MNIST npz: the core's loader
    # refuses it inside the run.
    bad = tmp_path / "not-mnist.npz"
    np.savez(bad, something=np.zeros(3))
    cfg = DigitsConfig(model="simple", epochs=1, data=DigitsDataConfig(source="npz", path=str(bad)))
    with pytest.raises(DataError) as err:
        adapter.run(store.request("digits-baddata", cfg))
    assert "\n" not in str(err.value)
    (run,) = _runs_of(store, "digits-baddata")
    assert run.info.status == "FAILED"


def _runs_of(store: Store, run_folder: str) -> list[Any]:
    """The runs tagged with a run folder of this name (the adapter tags every run)."""
    client = store.client()
    return client.search_runs(  # type: ignore[no-any-return]
        [client.get_experiment_by_name("mlopsbench-digits").experiment_id],
        filter_string=f"tags.`mlopsbench.run_dir` LIKE '%{run_folder}'",
    )


def test_ctrl_c_ends_the_run_killed(
    passed_run: RunResult, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: object, **kwargs: object) -> dict[str, object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_stages, "build_model", interrupt)
    with pytest.raises(KeyboardInterrupt):
        adapter.run(store.request("digits-ctrl-c", PASSING))
    (run,) = _runs_of(store, "digits-ctrl-c")
    assert run.info.status == "KILLED"
    assert run.data.tags["mlopsbench.error"] == "KeyboardInterrupt"


def test_missing_input_fails_before_any_run(passed_run: RunResult, store: Store) -> None:
    missing = DigitsDataConfig(source="npz", path=str(store.root / "nowhere.npz"))
    cfg = DigitsConfig(model="simple", epochs=1, data=missing)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="data not found"):
        adapter.run(store.request("digits-missing-input", cfg))
    assert time.perf_counter() - t0 < 5  # before MLflow is even imported for it
    assert _runs_of(store, "digits-missing-input") == []


def test_unreachable_server_fails_fast(store: Store) -> None:
    request = store.request(
        "digits-noserver", PASSING, tracking_uri=f"http://127.0.0.1:{free_port()}"
    )
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="unreachable"):
        adapter.run(request)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("uri", ["ftp://example/x", "s3://bucket/store", "htp://localhost:5000"])
def test_wrong_uri_scheme(store: Store, uri: str) -> None:
    with pytest.raises(ConfigError, match="unsupported MLflow tracking URI scheme"):
        adapter.run(store.request("digits-badscheme", PASSING, tracking_uri=uri))


def test_unknown_model_and_alias(passed_run: RunResult, store: Store) -> None:
    with pytest.raises(ConfigError, match="no registered model named 'digits-nope'"):
        tracking.check_registered_model(store.uri, "digits-nope@champion")
    with pytest.raises(ConfigError, match="has no alias 'staging'"):
        tracking.check_registered_model(store.uri, "digits-simple@staging")
    with pytest.raises(ConfigError, match="has no version 999"):
        tracking.check_registered_model(store.uri, "digits-simple/999")
    with pytest.raises(ConfigError, match="must look like"):
        tracking.check_registered_model(store.uri, "digits-simple")
    champion = tracking.check_registered_model(store.uri, "digits-simple@champion")
    assert str(champion.version) == passed_run.tool_info["model_version"]
