"""Dagster: software-defined assets (data -> model -> evaluation) with an asset check as gate.

``pipeline/`` holds what a Dagster user writes: one code location (``definitions.py``) whose
``Definitions`` carry both use cases' assets in their own groups and jobs, their settings
resources generated from the core configs, the files resource and a blocking asset check per
use case that is the quality gate, and the sweep (``sweep_assets.py``: a graph-backed asset
mapping one step per trial over a ``DynamicOut``). The rest is the adapter: ``adapter.py`` (the
record and the evidence), ``sweep.py`` (the sweep on Dagster's multiprocess executor, trials
read back from the event log), ``launch.py`` (job lookup, run config, in-process execution),
``instance.py`` (the run folder's own ``DAGSTER_HOME``), ``readback.py`` (run record, step
statistics and event log, through the instance's API), and ``commands.py`` / ``server.py`` /
``probe.py`` (``mlopsbench server dagster``: ``dagster dev`` on 127.0.0.1). Nothing here
imports Dagster.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="dagster",
    title="Dagster",
    description="Dagster software-defined assets materialised in-process, asset checks as gate",
    package=__name__,
    distributions=("dagster", "dagster-webserver"),
    api_packages=("dagster",),
    sweep="sweep",
    commands="commands",
    server_probe="probe:time_to_healthy",
    colour="#4f43dd",
    ui="Dagster UI (dagster-webserver)",
    services=(
        "dagster-webserver (UI + GraphQL)",
        "dagster-daemon (schedules, sensors, run queue)",
        "instance storage (SQLite files under DAGSTER_HOME / PostgreSQL)",
    ),
    services_note="In-process materialisation needs no service: runs, events and checks go to "
    "SQLite files under DAGSTER_HOME; `dagster dev` adds the UI and the daemon.",
    conventional_instances={
        "context": "dagster.AssetExecutionContext()",
    },
)
