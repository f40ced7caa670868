"""Metaflow: a ``FlowSpec`` per use case, run with the Runner API, with cards.

``pipeline/`` holds what a Metaflow user writes: the flows and their small helpers. The rest
is the harness's adapter: ``adapter`` (record, evidence), ``sweep`` (the sweep scenario's
``foreach`` flow), ``launch`` (flow lookup, parameters, Runner, card export) and ``readback``
(Client API). Nothing heavy is imported here.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="metaflow",
    title="Metaflow",
    description="Metaflow FlowSpec run through the Runner API, with cards",
    package=__name__,
    distributions=(
        "metaflow",
        # Metaflow builds the pod specs of `argo-workflows create` / `airflow create` with the
        # Kubernetes client. Locked at 35.0.0: 36 adds aiohttp, 37 needs a newer pydantic than
        # the core's, and before 35 it pulls google-auth and cryptography.
        "kubernetes",
    ),
    api_packages=("metaflow",),
    sweep="sweep",
    colour="#ff7043",
    ui="Metaflow UI (or cards)",
    services=(
        "metadata service",
        "UI backend service",
        "UI frontend",
        "PostgreSQL",
        "S3-compatible datastore",
    ),
    services_note="Cards can be exported to HTML without any service (`card get`); the local "
    "`card server` binds all interfaces, so it is not started here. The paper could not deploy "
    "the UI (Section 4.1).",
)
