"""Apache Airflow 3: TaskFlow DAGs per use case, run with ``dag.test()`` or on a local server.

``pipeline/`` holds what an Airflow user writes (the DAG files ``mlopsbench_<usecase>.py``, the
helpers they share and the alert callbacks) and is the DAGs folder; the rest is the adapter
(``adapter.py``: run with ``dag.test()`` in a worker process, read back through Airflow's
models), the local server and the CLI extras. Nothing is imported here: Airflow reads its
configuration when first imported, so the adapter and the server start Airflow in child
processes whose environment is set up first.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="airflow",
    title="Airflow",
    description="Airflow 3 TaskFlow DAG run with dag.test() on an isolated SQLite home",
    package=__name__,
    distributions=(
        "apache-airflow",
        "apache-airflow-providers-standard",
        # CeleryExecutor (celery[redis]) and PostgreSQL as the metadata DB (sync + async drivers)
        "apache-airflow-providers-celery",
        "psycopg2-binary",
        "asyncpg",
    ),
    api_packages=("airflow",),
    sweep="sweep",  # the trials as one mapped task (dynamic task mapping)
    commands="commands",
    server_probe="probe:time_to_healthy",
    colour="#00ad46",
    ui="Airflow UI",
    services=(
        "api-server (UI + REST + execution API)",
        "scheduler",
        "dag-processor",
        "metadata database (SQLite dev / PostgreSQL)",
        "Celery workers + Redis broker (CeleryExecutor)",
    ),
    services_note="dag.test() runs a DAG with no service; the UI needs the three processes "
    "plus the database; `server airflow --executor celery` adds PostgreSQL, Redis and workers.",
    variants={
        "local": {"executor": "local"},  # LocalExecutor on a local PostgreSQL deployment
        "celery": {"executor": "celery"},  # + Redis and two Celery workers
    },
    conventional_instances={
        "dag_run": "airflow.models.DagRun()",
        "ti": "airflow.models.TaskInstance()",
    },
)
