"""Shared MLflow building blocks: the one place (with ``tools/mlflow``) that talks to MLflow.

Other tools (Metaflow, Airflow, KFP) call :func:`log_run_to_mlflow` when the user gives a
tracking URI; the MLflow runner composes the same smaller blocks (experiment, batched logging,
dataset input, artifacts, model logging, registration) so there is one implementation of each.

``mlflow`` is imported lazily (``import mlflow`` costs ~3 s and writes telemetry files): importing
this module is free. This module is also the pyfunc *loader module* of every model we log
(``_load_pyfunc``): MLflow stores the core's model folder (safetensors + JSON, or a Hugging Face
folder) as the model's data and calls back into this module to load it, so nothing is pickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError, ServerError

# Schemes MLflow can track to; anything else is a typo we catch before MLflow hangs or guesses.
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_ALLOWED_SCHEMES = ("http", "https", "file", "databricks", *_DB_SCHEMES)

READY_TIMEOUT_S = 120.0
CHAMPION = "champion"
LOADER_MODULE = "mlopsbench.tracking"
PYFUNC_SPEC = "mlopsbench_pyfunc.json"  # use case + inference settings, next to the weights


# ------------------------------------------------------------------------------------------
# importing and configuring MLflow
# ------------------------------------------------------------------------------------------


def import_mlflow() -> Any:
    """Import mlflow with telemetry off (must be set before the first import).

    Also bounds MLflow's HTTP retries (default 7 with exponential backoff: minutes of silence
    when a tracking server dies mid-run); users can still override both variables.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    import mlflow

    return mlflow


def default_tracking_uri(store_root: str | Path) -> str:
    """``sqlite:///<store_root>/mlflow.db`` (artifacts go to ``<store_root>/artifacts``)."""
    root = Path(store_root).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def resolve_tracking_uri(explicit: str | None, store_root: str | Path) -> str:
    """The URI to use: explicit, else ``$MLFLOW_TRACKING_URI``, else a SQLite store in ``store_root``."""
    uri = (explicit or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    return uri or default_tracking_uri(store_root)


def uri_scheme(uri: str) -> str:
    """The base scheme (``postgresql+psycopg2`` -> ``postgresql``; a bare path -> ``file``)."""
    scheme = urlparse(uri).scheme.lower()
    if not scheme or len(scheme) == 1:  # "" or a Windows drive letter
        return "file"
    return scheme.split("+", 1)[0]


def check_tracking_uri(uri: str, timeout_s: float = 3.0) -> None:
    """Reject unknown schemes; for http(s), fail fast (one line) when the server is unreachable.

    MLflow itself would retry an unreachable server for minutes before giving up.
    """
    scheme = uri_scheme(uri)
    if scheme not in _ALLOWED_SCHEMES:
        raise ConfigError(
            f"unsupported MLflow tracking URI scheme {scheme!r} in {redact_uri(uri)!r}; "
            "use http(s)://host:port, "
            "sqlite:///path.db, postgresql://… or file:///path"
        )
    if scheme == "sqlite":
        db_path = sqlite_path(uri)
        if db_path is not None:
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create MLflow store folder {db_path.parent}: {exc.strerror}"
                ) from None
    if scheme in ("http", "https"):
        check_server(uri, timeout_s)


def check_server(uri: str, timeout_s: float = 3.0) -> None:
    """GET ``<uri>/health``; raise ServerError with one line when it does not answer 200."""
    import requests

    url = uri.rstrip("/") + "/health"
    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip().lower()
        raise ServerError(f"MLflow tracking server {uri} is unreachable ({reason})") from None
    if response.status_code != 200:
        raise ServerError(
            f"MLflow tracking server {uri} answered HTTP {response.status_code} on /health"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for in-memory or other schemes)."""
    if uri_scheme(uri) != "sqlite":
        return None
    path = uri.split("://", 1)[1]
    if path in ("", "/", "/:memory:"):
        return None
    return Path(path[1:] if path.startswith("/") else path)


def artifact_location_for(uri: str, store_root: str | Path) -> str | None:
    """Where new experiments keep artifacts: next to a SQLite file, or in ``store_root``.

    A tracking server decides for itself (None). Without this, MLflow would write ``./mlruns``
    relative to whatever the current directory happens to be.
    """
    scheme = uri_scheme(uri)
    if scheme in ("http", "https", "databricks", "file"):
        return None
    db_path = sqlite_path(uri)
    folder = db_path.parent if db_path is not None else Path(store_root)
    return (folder.resolve() / "artifacts").as_uri()


def use_tracking_uri(uri: str) -> Any:
    """Point MLflow's fluent API (log_model, load_model, registry) at ``uri``; return a client."""
    mlflow = import_mlflow()
    # set_tracking_uri also exports MLFLOW_TRACKING_URI (for subprocesses): restore the user's
    # environment, or the next run in this process would take our URI for the user's choice.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def redact_uri(uri: str) -> str:
    """The URI without a password (``postgresql://user:***@host/db``), for messages and records."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def unredact_uri(recorded: str) -> str:
    """A recorded (redacted) URI back to the real one, when ``$MLFLOW_TRACKING_URI`` is it."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    return env if "***" in recorded and env and redact_uri(env) == recorded else recorded


def open_experiment(uri: str, usecase: str, store_root: str | Path) -> tuple[Any, str]:
    """Connect to the store and get (or create) ``mlopsbench-<usecase>``: (client, experiment id).

    A store that cannot be opened (missing database driver, corrupt SQLite file, refused
    connection) becomes one ServerError line instead of a stack of SQLAlchemy frames.
    """
    try:
        client = use_tracking_uri(uri)
        experiment_id = ensure_experiment(
            client, experiment_name(usecase), artifact_location_for(uri, store_root)
        )
    except MlopsbenchError:
        raise
    except Exception as exc:
        raise ServerError(
            f"cannot open MLflow store {redact_uri(uri)}: {first_line(exc)}"
        ) from None
    return client, experiment_id


def first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """Experiment id of ``name``, creating it (with our artifact location) the first time."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:  # another process created it between our get and create
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def experiment_name(usecase: str) -> str:
    return f"mlopsbench-{usecase}"


# ------------------------------------------------------------------------------------------
# run contents: tags, params, metrics, dataset, artifacts
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
    for package, version in environment_info().items():
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
    text = "None" if value is None else str(value)
    return text[:6000]  # MLflow's param length limit


def data_context(usecase: str) -> str:
    """MLflow dataset context of the core's ``prepare_data`` output: the digits file holds both
    splits; the sentiment file is the evaluation sample (a training sample is logged apart)."""
    return "training" if usecase == "digits" else "evaluation"


def log_dataset(
    client: Any, run_id: str, usecase: str, dataset: Mapping[str, Any], context: str = "training"
) -> None:
    """The dataset as an MLflow dataset input: origin, content digest, sizes, local file.

    The core already hashes the data (``digest``), so we log its metadata rather than letting
    MLflow re-hash the arrays.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    origin = str(dataset.get("source", "unknown"))
    data_path = dataset.get("data_path")
    if data_path:
        source_type, source = "local", json.dumps({"uri": Path(data_path).resolve().as_uri()})
    else:
        source_type, source = "code", json.dumps({"tags": {"origin": origin}})
    profile = {
        k: v for k, v in dataset.items() if k not in ("data_path", "digest") and _jsonable(v)
    }
    entity = Dataset(
        name=f"{usecase}:{origin}",
        digest=str(dataset.get("digest", "unknown")),
        source_type=source_type,
        source=source,
        profile=json.dumps(profile),
    )
    client.log_inputs(
        run_id, datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]
    )


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


def log_artifact_files(client: Any, run_id: str, artifacts: Mapping[str, str]) -> list[str]:
    """Upload each existing file (folders are skipped: models go through log_model)."""
    logged = []
    for path in artifacts.values():
        if path and Path(path).is_file():
            folder = artifact_folder(path)
            client.log_artifact(run_id, str(path), artifact_path=folder)
            logged.append(f"{folder}/{Path(path).name}")
    return logged


# ------------------------------------------------------------------------------------------
# models: logging, registration and the pyfunc loader
# ------------------------------------------------------------------------------------------


def pip_requirements(usecase: str) -> list[str]:
    """Pinned requirements of the served model, given explicitly (inferring them costs ~13 s).

    ``mlopsbench`` itself is not on PyPI: serve with ``--env-manager local`` in an environment
    where it is installed.
    """
    from importlib import metadata

    dists = ["mlflow", "torch", "numpy", "pandas", "safetensors"]
    if usecase == "sentiment":
        dists += ["transformers", "tokenizers"]
    reqs = []
    for dist in dists:
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def model_signature(usecase: str) -> Any:
    """Digits: uint8 images (-1, 28, 28) -> int64 classes; sentiment: ``text`` column -> labels."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    if usecase == "digits":
        return ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("uint8"), (-1, 28, 28))]),
            outputs=Schema([TensorSpec(np.dtype("int64"), (-1,))]),
        )
    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([ColSpec("long", "label")]),
    )


def input_example(usecase: str, data_path: str | None) -> Any:
    """A small real input (two test images / two reviews), stored with the model."""
    import numpy as np

    if usecase == "digits":
        if data_path and Path(data_path).is_file():
            with np.load(data_path) as npz:
                return np.ascontiguousarray(npz["x_test"][:2], dtype=np.uint8)
        return np.zeros((2, 28, 28), dtype=np.uint8)
    import pandas as pd

    return pd.DataFrame({"text": ["A moving, beautifully acted film.", "Dull and far too long."]})


def log_core_model(
    usecase: str,
    model_dir: str | Path,
    *,
    data_path: str | None = None,
    settings: Mapping[str, Any] | None = None,
    name: str = "model",
) -> Any:
    """Log the core's model folder as a pyfunc model of the active run; return ModelInfo.

    ``loader_module`` workflow: MLflow copies the folder (safetensors/HF files) into the model
    and calls :func:`_load_pyfunc` on load — no pickled module or pickled Python object.
    ``settings`` (inference options such as ``max_length``) travel in a small JSON next to the
    weights; MLflow's own ``model_config`` would also be logged as run params and could clash.
    """
    import tempfile

    import_mlflow()
    import mlflow.pyfunc

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError(f"model folder {model_dir} does not exist")
    with tempfile.TemporaryDirectory(prefix="mlopsbench-model-") as staging:
        staged = stage_model_folder(model_dir, {"usecase": usecase, **(settings or {})}, staging)
        return mlflow.pyfunc.log_model(
            name=name,
            loader_module=LOADER_MODULE,
            data_path=str(staged),
            signature=model_signature(usecase),
            input_example=input_example(usecase, data_path),
            pip_requirements=pip_requirements(usecase),
            metadata={"mlopsbench.usecase": usecase},
        )


def stage_model_folder(model_dir: Path, spec: Mapping[str, Any], staging: str | Path) -> Path:
    """A folder of symlinks to the core's files plus ``PYFUNC_SPEC`` (MLflow copies the targets)."""
    staged = Path(staging) / "model"
    staged.mkdir(parents=True)
    for item in model_dir.iterdir():
        (staged / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    (staged / PYFUNC_SPEC).write_text(json.dumps(dict(spec), indent=2))
    return staged


def register_model_version(
    client: Any,
    model_uri: str,
    name: str,
    run_id: str | None,
    timeout_s: float = READY_TIMEOUT_S,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Create a new version of ``name`` (linked to run and LoggedModel); wait until READY."""
    import_mlflow()
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    # await_creation_for=0: MLflow's own wait is a fixed sleep loop; we poll, bounded, below.
    version = client.create_model_version(
        name,
        source=model_uri,
        run_id=run_id,
        tags=dict(tags or {}),
        model_id=model_id,
        await_creation_for=0,
    )
    return wait_until_ready(client, name, str(version.version), timeout_s)


def wait_until_ready(
    client: Any, name: str, version: str, timeout_s: float = READY_TIMEOUT_S
) -> Any:
    """Poll a model version until READY; FAILED_REGISTRATION or the timeout raise ServerError."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        current = client.get_model_version(name, version)
        if current.status == "READY":
            return current
        if current.status == "FAILED_REGISTRATION":
            raise ServerError(
                f"registration of {name} version {version} failed: {current.status_message}"
            )
        if time.monotonic() > deadline:
            raise ServerError(f"{name} version {version} not READY after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``name@alias`` / ``name/version`` / ``models:/…`` -> (name, version, alias)."""
    text = ref.strip().removeprefix("models:/")
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        if name and alias:
            return name, None, alias
    elif "/" in text:
        name, version = text.rsplit("/", 1)
        if name and version.isdigit():
            return name, version, None
    raise ConfigError(f"model reference {ref!r} must look like NAME@ALIAS or NAME/VERSION")


def resolve_model_version(client: Any, ref: str) -> Any:
    """The registered ModelVersion a reference points to; one-line ConfigError if there is none."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_model_ref(ref)
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise ConfigError(f"no registered model named {name!r} in this MLflow store") from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException:
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise ConfigError(f"registered model {name!r} has no {what}") from None


def check_registered_model(tracking_uri: str, ref: str) -> Any:
    """Resolve ``ref`` in the registry and check its model files exist; return the ModelVersion.

    Serving or validating a version whose files were deleted would otherwise fail deep inside
    a worker; here it is one line.
    """
    client = use_tracking_uri(tracking_uri)
    version = resolve_model_version(client, ref)
    check_model_files(client, version)
    return version


def logged_model_id(version: Any) -> str | None:
    """The LoggedModel behind a version (the SQL store leaves ``model_id`` empty: use source)."""
    if getattr(version, "model_id", None):
        return str(version.model_id)
    source = str(version.source or "")
    if source.startswith("models:/m-") and "/" not in source.removeprefix("models:/"):
        return source.removeprefix("models:/")
    return None


def check_model_files(client: Any, version: Any) -> None:
    """DataError unless the version's MLmodel file can be listed in the artifact store."""
    try:
        model_id = logged_model_id(version)
        if model_id:
            files = client.list_logged_model_artifacts(model_id)
        else:
            import mlflow.artifacts

            files = mlflow.artifacts.list_artifacts(artifact_uri=version.source)
    except Exception as exc:
        raise DataError(
            f"model files of {version.name} version {version.version} are unreadable: "
            f"{first_line(exc)}"
        ) from None
    if not any(f.path.rstrip("/").endswith("MLmodel") for f in files):
        raise DataError(
            f"model files of {version.name} version {version.version} are missing "
            f"(no MLmodel under {version.source})"
        )


def load_registered_model(uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` with a one-line DataError when the files are gone or broken."""
    import_mlflow()
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except MlopsbenchError:
        raise
    except (MlflowException, OSError) as exc:
        raise DataError(f"cannot load model {uri}: {first_line(exc)}") from None


# The pyfunc flavor calls this (by module name, from the MLmodel file) to load a model we logged.
def _load_pyfunc(data_path: str) -> Any:
    spec_path = Path(data_path) / PYFUNC_SPEC
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise DataError(
            f"{data_path} is not an mlopsbench model (no readable {PYFUNC_SPEC})"
        ) from None
    usecase = spec.get("usecase")
    if usecase == "digits":
        return DigitsPyfunc(data_path)
    if usecase == "sentiment":
        return SentimentPyfunc(data_path, spec)
    raise DataError(f"{data_path} is not an mlopsbench model (unknown use case {usecase!r})")


class DigitsPyfunc:
    """Predicts digit classes (int64) for uint8 images: ndarray (N, 28, 28) or (N, 784)."""

    def __init__(self, model_dir: str | Path) -> None:
        from mlopsbench.usecases.digits.storage import load_model

        self.model = load_model(model_dir)

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        from mlopsbench.usecases.digits.evaluate import predict

        return predict(self.model, as_digit_images(model_input))


def as_digit_images(model_input: Any) -> Any:
    """Accept what a REST client may send (tensor, flat rows, DataFrame) as uint8 (N, 28, 28)."""
    import numpy as np

    if isinstance(model_input, dict):  # a named tensor input
        model_input = next(iter(model_input.values()))
    array = np.asarray(getattr(model_input, "values", model_input))
    if array.ndim == 2 and array.shape[1] == 28 * 28:
        array = array.reshape(-1, 28, 28)
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise ValueError(f"expected images of shape (N, 28, 28), got {tuple(array.shape)}")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return array


class SentimentPyfunc:
    """Predicts sentiment (1 positive, 0 negative) for a DataFrame with a ``text`` column.

    Uses the core's batched inference with the run's truncation settings, so the served model
    answers exactly what the pipeline evaluated.
    """

    SETTINGS = ("batch_size", "max_length", "truncation")

    def __init__(self, model_dir: str | Path, spec: Mapping[str, Any]) -> None:
        from mlopsbench.usecases.sentiment.model import load_classifier

        self.model, self.tokenizer = load_classifier(model_dir)
        self.settings = {k: spec[k] for k in self.SETTINGS if spec.get(k) is not None}

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        import pandas as pd

        from mlopsbench.usecases.sentiment.infer import predict

        texts = _texts(model_input)
        if not texts:
            return pd.DataFrame({"label": pd.Series([], dtype="int64")})
        preds = predict(self.model, self.tokenizer, texts, **self.settings).preds
        return pd.DataFrame({"label": preds.astype("int64")})


def _texts(model_input: Any) -> list[str]:
    if hasattr(model_input, "columns"):
        if "text" not in model_input.columns:
            raise ValueError("expected a DataFrame with a 'text' column")
        return [str(t) for t in model_input["text"].tolist()]
    if isinstance(model_input, dict) and "text" in model_input:
        return [str(t) for t in model_input["text"]]
    return [str(t) for t in model_input]


# ------------------------------------------------------------------------------------------
# the helper other tools call
# ------------------------------------------------------------------------------------------


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
) -> dict[str, str | None]:
    """Record one finished pipeline run in MLflow, the way the MLflow runner records its own.

    ``artifacts`` are files to upload (plots under ``plots/``, JSON under ``evaluation/``);
    ``model_dir`` is a core model folder, logged as a pyfunc model; ``dataset`` is the core's
    ``prepare_data`` summary (source, digest, sizes, data_path). Without a URI, uses
    ``$MLFLOW_TRACKING_URI`` or a SQLite store in ``store_root`` (default ``./runs/mlflow``).
    Returns ``{"run_id", "experiment_id", "model_uri"}``.
    """
    root = Path(store_root) if store_root is not None else Path.cwd() / "runs" / "mlflow"
    uri = resolve_tracking_uri(tracking_uri, root)
    check_tracking_uri(uri)
    mlflow = import_mlflow()
    client, experiment_id = open_experiment(uri, usecase, root)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        log_batch(
            client,
            run_id,
            params=params,
            metrics=metrics,
            history=history,
            tags=standard_tags(tool, usecase, tags),
        )
        if dataset:
            log_dataset(client, run_id, usecase, dataset, data_context(usecase))
        log_artifact_files(client, run_id, artifacts or {})
        model_uri = None
        if model_dir:
            data_path = (dataset or {}).get("data_path")
            settings = {k: params[k] for k in SentimentPyfunc.SETTINGS if k in params}
            model_uri = log_core_model(
                usecase,
                model_dir,
                data_path=data_path,
                settings=settings if usecase == "sentiment" else None,
            ).model_uri
    return {"run_id": run_id, "experiment_id": experiment_id, "model_uri": model_uri}
