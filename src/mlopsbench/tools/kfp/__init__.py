"""Kubeflow Pipelines v2: typed components over the core stages, compiled IR, local runs.

``pipeline/`` holds the components and ``@dsl.pipeline`` wiring a KFP user writes (one file
per use case, ``pipeline/<use case>_pipeline.py``). The rest is the adapter: ``build.py`` (finds,
builds and compiles a use case's pipeline; the container image), ``adapter.py`` (the local run
and its read-back), ``submit.py`` and ``commands.py`` (``mlopsbench kfp compile|submit``), ``sweep.py`` (the sweep
scenario: ``dsl.ParallelFor`` run by kfp.local, read back the same way).
Nothing here imports kfp.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="kfp",
    title="Kubeflow Pipelines",
    description="Kubeflow Pipelines v2 components run by the local SubprocessRunner",
    package=__name__,
    distributions=("kfp",),
    api_packages=("kfp",),
    commands="commands",
    sweep="sweep",
    colour="#7e57c2",
    ui="Kubeflow Pipelines UI",
    services=(
        "Kubernetes cluster",
        "ml-pipeline API server",
        "ml-pipeline UI",
        "persistence agent",
        "scheduled-workflow controller",
        "Argo Workflows controller",
        "MySQL",
        "object store (MinIO/SeaweedFS)",
        "ML Metadata gRPC server + Envoy",
    ),
    services_note="The local SubprocessRunner needs no service and has no UI; outputs are "
    "files under pipeline_root.",
    conventional_instances={"client": "kfp.Client()", "kfp_client": "kfp.Client()"},
)
