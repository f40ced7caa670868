"""Registered models: create a version and wait until READY, resolve ``NAME@ALIAS`` /
``NAME/VERSION`` with one-line errors, check a version's files, load it.

What ``mlopsbench serve mlflow``, the tests and the other tools' logging share; the MLflow
pipeline itself registers and promotes with MLflow's own calls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlopsbench.errors import ConfigError, DataError, MlopsbenchError, ServerError
from mlopsbench.tracking.store import first_line, import_mlflow, use_tracking_uri

READY_TIMEOUT_S = 120.0
CHAMPION = "champion"


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
    # await_creation_for=0: MLflow's own wait sleeps a whole second per poll; we poll, bounded.
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
