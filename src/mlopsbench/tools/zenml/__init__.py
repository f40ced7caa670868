"""ZenML: a ``@pipeline`` of ``@step``s per use case on the default local stack, the model and
its versions in ZenML's Model Control Plane, the local dashboard.

``pipeline/`` holds what a ZenML user writes (one pipeline per use case, the shared quality
gate and MLflow steps, their helpers). The rest is the adapter: ``launch`` (run folder layout,
the isolated ZenML configuration, the worker process), ``worker`` (the child process that
imports ZenML: runs the pipeline, reads it back), ``readback`` (the Client API), ``adapter``
(the record, the evidence), ``sweep`` (the sweep scenario: its dynamic pipeline's record),
``server``/``commands``/``probe`` (the local dashboard). Nothing is imported here: ZenML reads
its global configuration when first used.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="zenml",
    title="ZenML",
    description="ZenML pipeline on the default local stack; model versions promoted by a gate",
    package=__name__,
    distributions=("zenml[server]",),
    api_packages=("zenml",),
    commands="commands",
    sweep="sweep",
    server_probe="probe:time_to_healthy",
    colour="#431d93",
    ui="ZenML dashboard",
    services=(
        "ZenML server (REST API + dashboard, one process)",
        "store database (SQLite file / MySQL)",
    ),
    services_note="Local runs need no server: the client writes to a SQLite store and a local "
    "artifact store; `zenml login --local` adds the dashboard.",
    conventional_instances={"client": "zenml.client.Client()"},
)
