"""The child process that imports ZenML: ``python -m mlopsbench.tools.zenml.worker``.

ZenML reads its global configuration (where the store and the artifact store live) from the
environment when first used, so the adapter prepares the environment and starts this module
with it; the harness process never imports ZenML. Five commands, each writing its JSON to
``--result`` atomically:

* ``run``: import ZenML, open (create) the store, run the use case's pipeline with
  ``run_pipeline(cfg, mlflow_uri)`` from ``pipeline/<use case>_pipeline.py``, then read the run
  back through the Client; seconds per phase, and the record.
* ``sweep``: as ``run`` for ``pipeline/sweep_pipeline.py``, read back with every trial;
  ``read_sweep``: a sweep run made elsewhere in the store (``zenml pipeline run``), read back.
* ``evidence``: the evidence checklist of an earlier run, judged through the Client.
* ``dashboard``: mark the store's default user as done with the dashboard's onboarding survey
  (email opt-in off), so the local dashboard opens on the runs.

User errors are reported in the result (``error``, ``error_type``) with exit code 2.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError, MlopsbenchError
from mlopsbench.support import workers
from mlopsbench.support.logs import last_line
from mlopsbench.usecases.registry import get_usecase

PIPELINE_PACKAGE = "mlopsbench.tools.zenml.pipeline"
DEFAULT_USER = "default"


def main(argv: list[str] | None = None) -> int:
    return workers.serve(COMMANDS, argv, prog="python -m mlopsbench.tools.zenml.worker")


# ------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------


def run_pipeline(request: dict[str, Any], reader: str = "read_run") -> dict[str, Any]:
    """Run the use case's pipeline once; ``request``: usecase, values (flat), mlflow_uri.
    ``reader``: the function of ``readback`` that turns the run into the record."""
    usecase = get_usecase(request["usecase"])
    cfg = usecase.config(request["values"])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    import zenml
    from zenml.client import Client

    from mlopsbench.tools.zenml import readback

    timings["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stack = Client().active_stack_model  # creates the SQLite store and default stack
    timings["store_init"] = time.perf_counter() - t0
    use_package_source_root()
    module = pipeline_module(usecase.name)
    started_at, t0 = time.time(), time.perf_counter()
    run, error = _call(module, cfg, request.get("mlflow_uri") or "", started_at)
    timings["pipeline"] = time.perf_counter() - t0
    returned_at, t0 = time.time(), time.perf_counter()
    record = getattr(readback, reader)(readback.get_run(str(run.id)))
    timings["readback"] = time.perf_counter() - t0
    return {
        "zenml_version": zenml.__version__,
        "stack": stack.name,
        "timings": timings,
        "pipeline_started_at": started_at,
        "pipeline_returned_at": returned_at,
        "pipeline_error": error,
        "record": record,
    }


def run_sweep(request: dict[str, Any]) -> dict[str, Any]:
    """The sweep's pipeline, read back with every trial's result (``readback.read_sweep``)."""
    return run_pipeline(request, reader="read_sweep")


def read_sweep(request: dict[str, Any]) -> dict[str, Any]:
    """Sweep runs started elsewhere (``zenml pipeline run``), read back as ``sweep`` reads its
    own; ``request``: newest (how many of the store's newest runs, oldest first; default 1)."""
    from zenml.client import Client

    from mlopsbench.tools.zenml import readback

    size = int(request.get("newest", 1))
    runs = Client().list_pipeline_runs(sort_by="desc:created", size=size).items
    return {"records": [readback.read_sweep(readback.get_run(str(r.id))) for r in runs[::-1]]}


def _call(module: Any, cfg: Any, mlflow_uri: str, started_at: float) -> tuple[Any, str]:
    """The pipeline run ``run_pipeline`` made, and why it failed (empty when it did not).

    A failed step makes the call raise after ZenML recorded the run: that run is read back.
    """
    from mlopsbench.tools.zenml import readback

    try:
        return module.run_pipeline(cfg, mlflow_uri=mlflow_uri), ""
    except Exception as exc:
        error = last_line(exc) or type(exc).__name__
        run = readback.latest_run(since=started_at)
        if run is None:
            raise MlopsbenchError(f"the ZenML pipeline did not start: {error}") from None
        return run, error


def use_package_source_root() -> None:
    """Record steps by their real module names (``mlopsbench.tools.zenml.pipeline...``).

    ZenML names a step by its file's path below the source root, which defaults to the folder
    of the main module (this worker's): the pipeline files would become ``pipeline.*``
    modules, imported a second time under that name. The folder above the ``mlopsbench``
    package is the root that gives every module its own name.
    """
    from zenml.utils import source_utils

    import mlopsbench

    source_utils.set_custom_source_root(str(Path(mlopsbench.__file__).resolve().parents[1]))


def pipeline_module(usecase: str) -> Any:
    """``pipeline/<use case>_pipeline.py``: a new use case needs only its file there."""
    name = f"{PIPELINE_PACKAGE}.{usecase}_pipeline"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ConfigError(f"no ZenML pipeline for the {usecase} use case ({name})") from None


# ------------------------------------------------------------------------------------------
# evidence, dashboard
# ------------------------------------------------------------------------------------------


def evidence(request: dict[str, Any]) -> dict[str, Any]:
    """``request``: run_id, usecase, params (the record's), status (the record's)."""
    from mlopsbench.tools.zenml import readback

    run = readback.get_run(request["run_id"])
    usecase = get_usecase(request["usecase"])
    return {
        "evidence": readback.recorded_evidence(run, usecase, request["params"], request["status"])
    }


def dashboard(request: dict[str, Any]) -> dict[str, Any]:
    """The dashboard asks a new user for a name and an email first; answer it for the store's
    default user (no email, opted out), so that it opens on the runs."""
    from zenml.client import Client
    from zenml.constants import FINISHED_ONBOARDING_SURVEY_KEY

    user = Client().update_user(
        DEFAULT_USER,
        updated_email_opt_in=False,
        updated_metadata={FINISHED_ONBOARDING_SURVEY_KEY: True},
    )
    runs = Client().list_pipeline_runs(size=1).total
    return {"user": user.name, "runs": runs}


COMMANDS = {
    "run": run_pipeline,
    "sweep": run_sweep,
    "read_sweep": read_sweep,
    "evidence": evidence,
    "dashboard": dashboard,
}


if __name__ == "__main__":
    # The result is written: skip tearing down torch, matplotlib and the dynamic pipeline
    # runner's threads (15 s of interpreter exit after a sweep on a busy 2-core box).
    workers.exit_now(main())
