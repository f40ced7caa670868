"""The shared MLflow helper other tools call: log a finished run, read it back from the store."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsbench import tracking
from mlopsbench.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def core_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a tool step hands the helper: an (untrained) core model, data, a plot, metrics."""
    from mlopsbench.usecases.common.plots import training_curve_png
    from mlopsbench.usecases.digits.config import DigitsConfig
    from mlopsbench.usecases.digits.models import build_model
    from mlopsbench.usecases.digits.stages import prepare_data
    from mlopsbench.usecases.digits.storage import save_model

    out = tmp_path_factory.mktemp("core")
    cfg = DigitsConfig(model="simple", epochs=2)
    data = prepare_data(cfg, out)
    history = [
        {"epoch": 1, "train_loss": 1.0, "test_accuracy": 0.5, "seconds": 0.1},
        {"epoch": 2, "train_loss": 0.5, "test_accuracy": 0.7, "seconds": 0.1},
    ]
    (out / "metrics.json").write_text(json.dumps({"accuracy": 0.7}))
    return {
        "cfg": cfg,
        "data": data,
        "history": history,
        "model_dir": str(save_model(build_model("simple"), "simple", out / "model")),
        "artifacts": {
            "training_curve": str(training_curve_png(history, out / "training_curve.png")),
            "metrics": str(out / "metrics.json"),
        },
    }


@pytest.fixture(scope="module")
def logged(
    core_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("store")
    ids = tracking.log_run_to_mlflow(
        None,
        tool="metaflow",
        usecase="digits",
        run_name="helper-test",
        params=core_outputs["cfg"].to_dict(),
        metrics={"accuracy": 0.7, "macro_f1": 0.6},
        history=core_outputs["history"],
        artifacts=core_outputs["artifacts"],
        model_dir=core_outputs["model_dir"],
        dataset=core_outputs["data"],
        tags={"metaflow.run_id": "42"},
        store_root=root,
    )
    return {"ids": ids, "uri": tracking.default_tracking_uri(root), "root": root}


def test_helper_run_read_back(logged: dict[str, Any], core_outputs: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=logged["uri"])
    run_id = logged["ids"]["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == logged["ids"]["experiment_id"]
    assert client.get_experiment(run.info.experiment_id).name == "mlopsbench-digits"
    assert run.data.params["model"] == "simple" and run.data.params["data_source"] == "sklearn"
    assert run.data.metrics["accuracy"] == 0.7
    assert (
        run.data.tags["mlopsbench.tool"] == "metaflow" and run.data.tags["metaflow.run_id"] == "42"
    )
    steps = [(m.step, m.value) for m in client.get_metric_history(run_id, "test_accuracy")]
    assert sorted(steps) == [(1, 0.5), (2, 0.7)]
    assert "epoch" not in run.data.metrics  # the step, not a metric
    paths = {a.path for a in client.list_artifacts(run_id, "plots")}
    paths |= {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert paths == {"plots/training_curve.png", "evaluation/metrics.json"}
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.digest == core_outputs["data"]["digest"]
    assert inp.dataset.source_type == "local"
    assert json.loads(inp.dataset.profile)["n_test"] == core_outputs["data"]["n_test"]
    assert (logged["root"] / "artifacts").is_dir()


def test_helper_model_loads_and_predicts(
    logged: dict[str, Any], core_outputs: dict[str, Any]
) -> None:
    from mlopsbench.usecases.digits.evaluate import predict
    from mlopsbench.usecases.digits.storage import load_model

    tracking.use_tracking_uri(logged["uri"])
    model = tracking.load_registered_model(logged["ids"]["model_uri"])
    images = np.load(core_outputs["data"]["data_path"])["x_test"][:16]
    expected = predict(load_model(core_outputs["model_dir"]), images)
    assert np.array_equal(model.predict(images), expected)
    # The signature is enforced: a wrong shape is refused before it reaches the network.
    with pytest.raises(Exception, match="does not match expected shape"):
        model.predict(images.reshape(16, -1))


def test_register_wait_ready_and_missing_files(logged: dict[str, Any]) -> None:
    client = tracking.use_tracking_uri(logged["uri"])
    mv = tracking.register_model_version(
        client, logged["ids"]["model_uri"], "digits-helper", logged["ids"]["run_id"]
    )
    assert mv.status == "READY"
    assert (
        tracking.check_registered_model(logged["uri"], f"digits-helper/{mv.version}").version
        == mv.version
    )
    model_folder = Path(
        client.get_logged_model(tracking.logged_model_id(mv)).artifact_location.removeprefix(
            "file://"
        )
    )
    shutil.rmtree(model_folder)
    with pytest.raises(DataError, match="missing"):
        tracking.check_registered_model(logged["uri"], f"digits-helper/{mv.version}")
    with pytest.raises(DataError, match="cannot load model"):
        tracking.load_registered_model(f"models:/digits-helper/{mv.version}")


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("sqlite:////tmp/x.db", "sqlite"),
        ("postgresql+psycopg2://u@h/db", "postgresql"),
        ("http://127.0.0.1:5000", "http"),
        ("/some/path", "file"),
    ],
)
def test_uri_scheme(uri: str, scheme: str) -> None:
    assert tracking.uri_scheme(uri) == scheme


def test_check_tracking_uri_rejects_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="'ftp'"):
        tracking.check_tracking_uri("ftp://host/store")


def test_resolve_and_artifact_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_tracking_uri(None, tmp_path / "mlflow")
    assert uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert (
        tracking.artifact_location_for(uri, tmp_path)
        == (tmp_path / "mlflow" / "artifacts").as_uri()
    )
    assert tracking.artifact_location_for("http://127.0.0.1:5000", tmp_path) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1234")
    assert tracking.resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:1234"
    assert tracking.resolve_tracking_uri("sqlite:///a.db", tmp_path) == "sqlite:///a.db"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("digits-cnn@champion", ("digits-cnn", None, "champion")),
        ("models:/digits-cnn/3", ("digits-cnn", "3", None)),
    ],
)
def test_parse_model_ref(ref: str, expected: tuple[str, str | None, str | None]) -> None:
    assert tracking.parse_model_ref(ref) == expected


def test_git_commit_outside_git(tmp_path: Path) -> None:
    assert tracking.git_commit(tmp_path) is None


def test_use_tracking_uri_keeps_the_users_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = "http://127.0.0.1:9"  # nothing is contacted: only the URI is set
    tracking.use_tracking_uri(uri)
    assert tracking.import_mlflow().get_tracking_uri() == uri
    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow exports it; we put it back


def test_redact_uri_hides_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "postgresql://mlflow:s3cret@db.internal:5432/mlflow"
    assert tracking.redact_uri(uri) == "postgresql://mlflow:***@db.internal:5432/mlflow"
    assert tracking.redact_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert tracking.unredact_uri(tracking.redact_uri(uri)) == uri


def test_corrupt_store_is_one_line(tmp_path: Path) -> None:
    from mlopsbench.errors import ServerError

    (tmp_path / "mlflow.db").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(ServerError, match="cannot open MLflow store") as err:
        tracking.open_experiment(tracking.default_tracking_uri(tmp_path), "digits", tmp_path)
    assert "\n" not in str(err.value)
