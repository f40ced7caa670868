"""MLflow: a tracked run per pipeline, a model registry with a gated ``champion`` alias,
a tracking server and model serving.

``pipeline/`` is what an MLflow user writes (the tracking script); the rest is the adapter.
Nothing heavy is imported here: this declaration is read by the CLI and the harness.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="mlflow",
    title="MLflow",
    description="MLflow tracking, model registry with a gated 'champion' alias",
    package=__name__,
    distributions=("mlflow", "psycopg2-binary"),  # + PostgreSQL backend store
    api_packages=("mlflow",),
    sweep="sweep",
    commands="commands",
    server_probe="probe:time_to_healthy",
    colour="#0194e2",
    ui="MLflow tracking UI",
    services=(
        "mlflow server (tracking API + UI, one process)",
        "backend store (SQLite file or a database)",
    ),
    services_note="Local use needs no server at all: runs go to a SQLite file; "
    "`mlflow server` adds the UI.",
    conventional_instances={
        "client": "mlflow.MlflowClient()",
        "mlflow_client": "mlflow.MlflowClient()",
    },
)
