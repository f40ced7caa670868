"""Prefect 3: a ``@flow`` of ``@task``s per use case, run on Prefect's local ephemeral API.

``pipeline/`` holds what a Prefect user writes: one flow file per use case
(``pipeline/<use case>_flow.py``, the sweep's included) and the helpers the flows share. The
rest is the adapter: ``adapter.py`` (record, evidence), ``sweep.py`` (the same for the sweep),
``worker.py`` (the child process that runs a flow and reads it back through Prefect's
client), ``environment.py`` (an isolated ``PREFECT_HOME``), plus the local server
(``server.py``, ``commands.py``, ``probe.py``). Nothing here imports Prefect: it reads its
settings when first imported, so it runs in processes whose environment is set first.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="prefect",
    title="Prefect",
    description="Prefect 3 flow of tasks on the local ephemeral API, persisted results, artifacts",
    package=__name__,
    distributions=("prefect",),
    api_packages=("prefect",),
    sweep="sweep",
    commands="commands",
    server_probe="probe:time_to_healthy",
    colour="#2e6bf2",
    ui="Prefect UI",
    services=(
        "prefect server (API + UI, one process)",
        "database (SQLite file or PostgreSQL)",
    ),
    services_note="A flow runs with no server at all: Prefect starts a temporary local API "
    "for the run; `prefect server start` adds the UI and keeps the history.",
    conventional_instances={"client": "prefect.client.orchestration.get_client()"},
)
