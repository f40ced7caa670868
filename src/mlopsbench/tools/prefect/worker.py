"""The child process that imports Prefect: ``python -m mlopsbench.tools.prefect.worker``.

Prefect reads its settings (``PREFECT_HOME``, API URL, result storage) once, when imported, and
its temporary local API lives as long as the process that started it; so the adapter starts
this module with :func:`~mlopsbench.tools.prefect.environment.prefect_env` and one run per
process. Two commands:

* ``run``: import the use case's flow (``pipeline/<use case>_flow.py``), start the API (the
  temporary one, or a check of ``PREFECT_API_URL``), call the flow with the parameters, then
  read the flow run back through Prefect's client;
* ``readback``: the same read-back for an earlier flow run (what ``evidence`` checks).

Both write their JSON to ``--result`` atomically; a user error is reported there (``error``,
``error_type``) with exit code 2, so the parent raises the right one-line error.
"""

from __future__ import annotations

import importlib
import time
from types import ModuleType
from typing import Any

from mlopsbench.errors import ConfigError
from mlopsbench.support import workers

PIPELINE_PACKAGE = "mlopsbench.tools.prefect.pipeline"


def main(argv: list[str] | None = None) -> int:
    commands = {
        "run": lambda request: run_flow(
            request["usecase"], request["parameters"], request.get("workers")
        ),
        "readback": lambda request: readback(request["flow_run_id"]),
    }
    return workers.serve(commands, argv, prog="python -m mlopsbench.tools.prefect.worker")


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def run_flow(
    usecase: str, parameters: dict[str, Any], workers: int | None = None
) -> dict[str, Any]:
    """Call the flow once; the record comes from Prefect's API, not from the call. With
    ``workers``, the flow module's ``with_workers(workers)`` gives the flow (its task runner)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    import prefect
    from prefect.client.orchestration import get_client

    module = flow_module(usecase)
    flow = find_flow(module) if workers is None else module.with_workers(int(workers))
    timings["import"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Without PREFECT_API_URL this starts the temporary API, which the flow then reuses.
    with get_client(sync_client=True) as client:
        client.hello()
        timings["api_start"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with api_for_subprocesses(str(client.api_url), workers):
            state = flow(**parameters, return_state=True)
        timings["flow_call"] = time.perf_counter() - t0
        flow_run_id = str(state.state_details.flow_run_id)
        t0 = time.perf_counter()
        deliver_events()
        record = _read(client, flow_run_id)
        timings["readback"] = time.perf_counter() - t0
        api = str(client.api_url)
    return {
        "flow_run_id": flow_run_id,
        "api_url": api,
        "prefect_version": prefect.__version__,
        "task_runner": type(flow.task_runner).__name__,
        "timings": timings,
        "record": record,
    }


def api_for_subprocesses(api_url: str, workers: int | None) -> Any:
    """With ``workers``, ``PREFECT_API_URL`` set to the API this process uses while the flow
    runs: a process-pool task runner hands its settings to the task processes it spawns, which
    would otherwise each start a temporary API of their own (30+ s each on a busy machine)."""
    import contextlib

    from prefect.settings import PREFECT_API_URL, temporary_settings

    if workers is None:
        return contextlib.nullcontext()
    return temporary_settings(updates={PREFECT_API_URL: api_url.rstrip("/")})


def flow_module(usecase: str) -> ModuleType:
    """``pipeline/<use case>_flow.py``: a new use case needs only its flow file there."""
    name = f"{PIPELINE_PACKAGE}.{usecase}_flow"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ConfigError(
            f"no Prefect flow for the {usecase} use case (pipeline/{usecase}_flow.py)"
        ) from None


def find_flow(module: ModuleType) -> Any:
    """The one ``@flow`` the module defines."""
    from prefect import Flow

    flows = [value for value in vars(module).values() if isinstance(value, Flow)]
    if len(flows) != 1:
        raise ConfigError(f"{module.__name__} must define exactly one @flow, found {len(flows)}")
    return flows[0]


def deliver_events() -> None:
    """Send the logs and events still queued in this process to the API (task runs report
    their states as events), as Prefect's own test harness does before reading a run back;
    with no connection left open, the temporary API then also stops at once."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    EventsWorker.drain_all()


# ---------------------------------------------------------------------------------------------
# readback
# ---------------------------------------------------------------------------------------------


def readback(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {"flow_run_id": flow_run_id, "record": _read(client, flow_run_id)}


def _read(client: Any, flow_run_id: str) -> dict[str, Any]:
    from prefect.exceptions import ObjectNotFound

    from mlopsbench.tools.prefect.readback import read_flow_run

    try:
        return read_flow_run(client, flow_run_id)
    except ObjectNotFound:
        raise ConfigError(f"Prefect has no flow run {flow_run_id}") from None


if __name__ == "__main__":
    workers.exit_now(main(), exit_handlers=True)
