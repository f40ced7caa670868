"""No MLOps tool: the baseline every overhead is measured against.

``pipeline/`` is the same pipeline as a plain Python script calling the core; the adapter runs
the core's stages in-process and checks what the run folder holds.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="plain",
    title="plain Python",
    description="No MLOps tool: the baseline every overhead is measured against",
    package=__name__,
    distributions=(),
    api_packages=(),
    sweep="sweep",
    colour="#607d8b",
    ui="none (files in the run folder)",
)
