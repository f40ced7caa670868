"""Shared MLflow building blocks: the one place besides ``tools/mlflow`` that talks to MLflow.

Other tools (Metaflow, Airflow, KFP) call :func:`log_run_to_mlflow` when the user gives a
tracking URI; the MLflow pipeline logs with MLflow's own calls and shares the pieces here, so
each piece exists once:

- :mod:`~mlopsbench.tracking.store`: the URI (resolve, parse, check, redact), the SQLite path,
  the artifact location, opening the experiment;
- :mod:`~mlopsbench.tracking.runs`: tags, batched params and metrics, the dataset input, the
  artifacts, and :func:`log_run_to_mlflow`;
- :mod:`~mlopsbench.tracking.packaging` (with :mod:`~mlopsbench.tracking.codepaths`): the
  core's model as a portable pyfunc model (models from code, weights as artifacts, the core
  modules serving needs as ``code_paths``, signature, input example, pinned requirements);
- :mod:`~mlopsbench.tracking.registry`: registration, version references and checks, loading.

Importing this package is free: ``mlflow`` (~3 s, and telemetry files) is imported only by the
functions that use it (:func:`import_mlflow`).
"""

from mlopsbench.support.uris import redact_uri
from mlopsbench.tracking.codepaths import core_modules, module_source, stage_core_code
from mlopsbench.tracking.packaging import (
    PYFUNC_MODEL_FILE,
    PYFUNC_SPEC,
    PackagedModel,
    log_core_model,
    model_signature,
    packaged_model,
    pip_requirements,
    serving_settings,
)
from mlopsbench.tracking.registry import (
    CHAMPION,
    check_model_files,
    check_registered_model,
    load_registered_model,
    logged_model_id,
    parse_model_ref,
    register_model_version,
    resolve_model_version,
    wait_until_ready,
)
from mlopsbench.tracking.runs import (
    artifact_folder,
    artifact_paths,
    core_dataset,
    git_commit,
    log_artifact_files,
    log_batch,
    log_run_to_mlflow,
    log_stages_to_mlflow,
    param_value,
    standard_tags,
)
from mlopsbench.tracking.store import (
    absolute_store_uri,
    artifact_location_for,
    check_server,
    check_tracking_uri,
    default_tracking_uri,
    environment_kept,
    experiment_name,
    first_line,
    import_mlflow,
    open_experiment,
    resolve_tracking_uri,
    sqlite_path,
    unredact_uri,
    uri_scheme,
    use_tracking_uri,
)

__all__ = [
    "CHAMPION",
    "PYFUNC_MODEL_FILE",
    "PYFUNC_SPEC",
    "PackagedModel",
    "absolute_store_uri",
    "artifact_folder",
    "artifact_location_for",
    "artifact_paths",
    "check_model_files",
    "check_registered_model",
    "check_server",
    "check_tracking_uri",
    "core_dataset",
    "core_modules",
    "default_tracking_uri",
    "environment_kept",
    "experiment_name",
    "first_line",
    "git_commit",
    "import_mlflow",
    "load_registered_model",
    "log_artifact_files",
    "log_batch",
    "log_core_model",
    "log_run_to_mlflow",
    "log_stages_to_mlflow",
    "logged_model_id",
    "model_signature",
    "module_source",
    "open_experiment",
    "packaged_model",
    "param_value",
    "parse_model_ref",
    "pip_requirements",
    "redact_uri",
    "register_model_version",
    "resolve_model_version",
    "resolve_tracking_uri",
    "serving_settings",
    "sqlite_path",
    "stage_core_code",
    "standard_tags",
    "unredact_uri",
    "uri_scheme",
    "use_tracking_uri",
    "wait_until_ready",
]
