"""The shared MLflow helper other tools call: log a finished run, read it back from the store."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsbench import tracking
from mlopsbench.errors import ConfigError, DataError
from mlopsbench.tracking.codepaths import PACKAGE_ROOT


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


@pytest.fixture(scope="module")
def digits_model_folder(
    core_outputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The logged digits model, downloaded from its own store (``logged``'s gets deleted)."""
    root = tmp_path_factory.mktemp("portable")
    uri = tracking.default_tracking_uri(root)
    mlflow = tracking.import_mlflow()
    _, experiment_id = tracking.open_experiment(uri, "digits", root)
    with mlflow.start_run(experiment_id=experiment_id):
        info = tracking.log_core_model(
            "digits", core_outputs["model_dir"], data_path=core_outputs["data"]["data_path"]
        )
    return Path(mlflow.artifacts.download_artifacts(info.model_uri))


def test_logged_model_is_code_plus_safetensors(
    digits_model_folder: Path, core_outputs: dict[str, Any]
) -> None:
    """Models from code: the model file, the core's modules and weights; no pickle, no loader
    module of ours, no mlopsbench requirement."""
    from mlflow.models import Model

    local = digits_model_folder
    flavor = Model.load(local).flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert Path(flavor["model_code_path"]).name == "pyfunc_model.py"
    assert (local / "pyfunc_model.py").is_file() and flavor["code"] == "code"
    assert set(flavor["artifacts"]) == {"model", "spec"}
    assert "mlopsbench.tracking" not in (local / "MLmodel").read_text()
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt", ".pth"))]
    assert {"artifacts/model/model.safetensors", "artifacts/model/model.json"} <= files
    spec = json.loads((local / "artifacts" / tracking.PYFUNC_SPEC).read_text())
    assert spec == {
        "usecase": "digits",
        "serving_module": "mlopsbench.usecases.digits.serving",
        "settings": {},
    }
    shipped = {f.removeprefix("code/") for f in files if f.startswith("code/")}
    src = PACKAGE_ROOT.parent
    expected = {
        tracking.module_source(m).relative_to(src).as_posix()
        for m in tracking.core_modules("digits")
    }
    assert shipped == expected
    assert "mlopsbench/usecases/digits/serving.py" in shipped  # imported by name, by the model
    # The input example is the first two test images, as test_inputs gives them.
    example = Model.load(local).load_input_example(str(local))
    test_images = np.load(core_outputs["data"]["data_path"])["x_test"][:2]
    assert example.dtype == np.uint8 and np.array_equal(example, test_images)
    requirements = (local / "requirements.txt").read_text().split()
    assert requirements == tracking.pip_requirements("digits")
    assert not any(r.startswith("mlopsbench") or "+" in r for r in requirements)


def test_core_modules_are_the_prediction_closure() -> None:
    digits = tracking.core_modules("digits")
    assert {
        "mlopsbench",
        "mlopsbench.errors",
        "mlopsbench.usecases",
        "mlopsbench.usecases.digits",
        "mlopsbench.usecases.digits.models",
        "mlopsbench.usecases.digits.storage",
        "mlopsbench.usecases.digits.evaluate",
    } <= set(digits)
    assert "mlopsbench.usecases.digits.serving" in digits  # where the closure starts
    sentiment = tracking.core_modules("sentiment")
    assert {
        "mlopsbench.usecases.sentiment.serving",
        "mlopsbench.usecases.sentiment.model",
        "mlopsbench.usecases.sentiment.infer",
    } <= set(sentiment)
    for module in digits + sentiment:  # nothing above the core travels with a model
        assert (
            module == "mlopsbench"
            or module in ("mlopsbench.errors", "mlopsbench.result")
            or (module.startswith("mlopsbench.usecases"))
        ), module
    assert not any(".digits" in m for m in sentiment)
    with pytest.raises(ConfigError, match="no model packaging"):
        tracking.core_modules("weather")


# Import names of the model's requirements (pip_requirements), besides the standard library.
_REQUIREMENT_IMPORTS = {"mlflow", "torch", "numpy", "pandas", "safetensors", "transformers"}


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_shipped_core_imports_only_the_models_requirements(usecase: str) -> None:
    """Module-level imports of the shipped modules: stdlib, mlopsbench or a requirement.

    (Imports inside functions run only when called: prediction's are covered by loading the
    model in a fresh virtualenv, tests/tools/mlflow/test_mlflow_portable_model.py.)
    """
    allowed = set(sys.stdlib_module_names) | _REQUIREMENT_IMPORTS | {"mlopsbench", "__future__"}
    for module in tracking.core_modules(usecase):
        path = tracking.module_source(module)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path}: {ast.unparse(node)}"


# Loads the downloaded model folder with the installed mlopsbench hidden from sys.path: what a
# machine without mlopsbench sees (MLflow puts the model's code/ first on sys.path on load).
_HIDDEN_INSTALL_PROBE = """
import json, sys
from pathlib import Path
sys.path = [p for p in sys.path if not (Path(p) / "mlopsbench").is_dir()]
import mlflow.pyfunc
import numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
preds = model.predict(np.load(sys.argv[2]))
import mlopsbench
print(json.dumps({"preds": preds.tolist(), "mlopsbench": mlopsbench.__file__}))
"""


def test_model_loads_with_mlopsbench_hidden(
    digits_model_folder: Path, core_outputs: dict[str, Any], tmp_path: Path
) -> None:
    from mlopsbench.usecases.digits.evaluate import predict
    from mlopsbench.usecases.digits.storage import load_model

    local = digits_model_folder
    images = np.load(core_outputs["data"]["data_path"])["x_test"][:24]
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", _HIDDEN_INSTALL_PROBE, str(local), "images.npy"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["mlopsbench"]).is_relative_to(local / "code" / "mlopsbench")
    expected = predict(load_model(core_outputs["model_dir"]), images)
    assert out["preds"] == expected.tolist()


def _tiny_sentiment_model(out: Path) -> tuple[Path, list[str]]:
    """The smoke DistilBERT (untrained: fixed seed) saved as the core saves it."""
    from mlopsbench.usecases.sentiment.config import SentimentConfig
    from mlopsbench.usecases.sentiment.data import load_test_reviews
    from mlopsbench.usecases.sentiment.model import save_classifier
    from mlopsbench.usecases.sentiment.tiny import build_tiny_model, build_tokenizer

    texts = list(load_test_reviews(SentimentConfig(smoke=True)).texts)
    tokenizer = build_tokenizer(texts)
    model = build_tiny_model(len(tokenizer), seed=0)
    return save_classifier(model, tokenizer, out / "sentiment-model"), texts


def test_sentiment_model_keeps_the_runs_inference_settings(tmp_path: Path) -> None:
    import pandas as pd

    from mlopsbench.usecases.sentiment.infer import predict
    from mlopsbench.usecases.sentiment.model import load_classifier

    model_dir, texts = _tiny_sentiment_model(tmp_path)
    settings = {"batch_size": 4, "max_length": 24, "truncation": "chars"}
    uri = tracking.default_tracking_uri(tmp_path / "mlflow")
    mlflow = tracking.import_mlflow()
    _, experiment_id = tracking.open_experiment(uri, "sentiment", tmp_path / "mlflow")
    with mlflow.start_run(experiment_id=experiment_id):
        info = tracking.log_core_model("sentiment", model_dir, settings=settings)
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    assert json.loads((local / "artifacts" / tracking.PYFUNC_SPEC).read_text()) == {
        "usecase": "sentiment",
        "serving_module": "mlopsbench.usecases.sentiment.serving",
        "settings": settings,
    }
    assert (local / "artifacts" / "model" / "model.safetensors").is_file()
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".bin")]
    assert "transformers==" in (local / "requirements.txt").read_text()
    served = tracking.load_registered_model(info.model_uri).predict(pd.DataFrame({"text": texts}))
    assert list(served.columns) == ["label"] and served["label"].dtype == np.int64
    core_model, tokenizer = load_classifier(model_dir)
    expected = predict(core_model, tokenizer, texts, **settings).preds
    assert served["label"].tolist() == expected.tolist()


@pytest.mark.parametrize(
    "helper",
    [
        tracking.uri_scheme,
        tracking.check_tracking_uri,
        tracking.sqlite_path,
        lambda uri: tracking.artifact_location_for(uri, "."),
    ],
)
@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://[::1", "'http://[::1'"),
        ("postgresql://mlflow:s3cret@[::1/db", "'postgresql://mlflow:***@[::1/db'"),
        ("http://127.0.0.1:99999", "'http://127.0.0.1:99999'"),
    ],
)
def test_malformed_uri_is_one_config_error_line(helper: Any, uri: str, shown: str) -> None:
    with pytest.raises(ConfigError, match="malformed MLflow tracking URI") as err:
        helper(uri)
    message = str(err.value)
    assert shown in message and "s3cret" not in message and "\n" not in message


def test_malformed_uri_from_the_cli_is_exit_2_one_line(tmp_path: Path) -> None:
    """Item 8 of the fault catalogue: no ValueError traceback, and no run folder left behind."""
    args = ["run", "digits", "--tool", "mlflow", "--tracking-uri", "http://[::1"]
    done = subprocess.run(
        [sys.executable, "-m", "mlopsbench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "malformed MLflow tracking URI 'http://[::1': Invalid IPv6 URL" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()


def test_unredact_ignores_a_malformed_environment_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://u:pw@[::1/db")
    assert tracking.unredact_uri("postgresql://u:***@db/x") == "postgresql://u:***@db/x"


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


def test_redacting_a_malformed_uri_never_raises() -> None:
    """Redaction is support's (one implementation): it masks even what urlparse refuses."""
    assert tracking.redact_uri("postgresql://mlflow:s3cret@[::1/db") == (
        "postgresql://mlflow:***@[::1/db"
    )


def test_importing_the_package_imports_no_mlflow() -> None:
    probe = (
        "import sys, mlopsbench.tracking as t; t.resolve_tracking_uri(None, '.');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'torch')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_core_dataset_keeps_the_cores_digest_and_profile(tmp_path: Path) -> None:
    data_file = tmp_path / "data.npz"
    data_file.write_bytes(b"")
    summary = {
        "data_path": str(data_file),
        "source": "sklearn:load_digits",
        "digest": "b278f48aae1e8198",
        "n_train": 1437,
        "n_test": 360,
        "seconds": 0.4,  # the stage's timing: not a property of the data
    }
    entity = tracking.core_dataset("digits", summary)._to_mlflow_entity()
    assert entity.name == "digits:sklearn:load_digits" and entity.digest == "b278f48aae1e8198"
    assert json.loads(entity.profile) == {
        "source": "sklearn:load_digits",
        "n_train": 1437,
        "n_test": 360,
    }
    assert entity.source_type == "local"
    assert json.loads(entity.source) == {"uri": data_file.resolve().as_uri()}
    no_file = tracking.core_dataset("digits", {"source": "x", "digest": "d"})._to_mlflow_entity()
    assert no_file.source_type == "code" and json.loads(no_file.source) == {"tags": {"origin": "x"}}


def test_requirements_follow_the_shipped_code() -> None:
    """Derived from what the shipped serving code imports: transformers only for the model that
    uses it, and never the data loaders' libraries (scikit-learn), which prediction never runs."""
    digits = [r.split("==")[0] for r in tracking.pip_requirements("digits")]
    sentiment = [r.split("==")[0] for r in tracking.pip_requirements("sentiment")]
    assert digits == ["mlflow", "torch", "numpy", "pandas", "safetensors"]
    assert sentiment == [*digits, "transformers", "tokenizers"]


def test_model_file_is_the_mlflow_pipelines() -> None:
    assert tracking.PYFUNC_MODEL_FILE.is_file()
    assert tracking.PYFUNC_MODEL_FILE.parent.name == "pipeline"
    with pytest.raises(ConfigError, match="no model signature"):
        tracking.model_signature("audio")


def test_serving_settings_come_from_the_run_params() -> None:
    from mlopsbench.usecases.sentiment.config import SentimentConfig
    from mlopsbench.usecases.sentiment.serving import settings_of

    cfg = SentimentConfig(smoke=True, max_length=64, truncation="chars", batch_size=4)
    params = {**cfg.to_dict(), "mlflow_uri": "sqlite:///x.db"}  # a tool-only param is ignored
    assert tracking.serving_settings("sentiment", params) == settings_of(cfg)
    assert tracking.serving_settings("digits", {"model": "simple", "epochs": 2}) == {}


def test_log_run_to_mlflow_keeps_its_signature() -> None:
    """The other tools' pipelines call it with these keywords."""
    import inspect

    parameters = inspect.signature(tracking.log_run_to_mlflow).parameters
    assert list(parameters) == [
        "tracking_uri",
        "tool",
        "usecase",
        "run_name",
        "params",
        "metrics",
        "history",
        "artifacts",
        "model_dir",
        "dataset",
        "tags",
        "store_root",
    ]
