"""Weights & Biases: a training script that logs one offline W&B run per use-case run.

``pipeline/`` holds what a W&B user writes: one plain training script (``wandb.init`` with the
core's config, ``run.log`` per epoch, ``run.summary``, a ``wandb.Table`` and ``wandb.Image``s,
the dataset and the model as artifacts, the quality gate as the model artifact's alias). The
rest is the adapter (``adapter.py``: the offline run folder, the record) and ``readback.py``,
which reads the run back from its ``.wandb`` file with wandb's own reader (``wandb leet
inspect``). Nothing is imported here: ``import wandb`` takes ~1 s and the CLI reads this.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="wandb",
    title="Weights & Biases",
    description="W&B offline run: config, history, summary, media, dataset and model artifacts",
    package=__name__,
    distributions=("wandb",),
    api_packages=("wandb",),
    sweep="sweep",
    colour="#ffbe00",
    ui="W&B LEET (terminal UI, offline); the W&B web app",
    services=(
        "for the web app only: W&B Server (the wandb/local container: app, MySQL, object "
        "store) or the W&B cloud; LEET needs none",
    ),
    services_note="Offline runs need no service: a run is a local .wandb file that wandb's "
    "own reader (`wandb leet inspect`) and terminal UI (`wandb leet`) open. The web app needs "
    "`wandb sync` to the W&B cloud or to W&B Server, a container image from a container "
    "registry; neither is reachable here, so there is no `mlopsbench server wandb`.",
    conventional_instances={"run": "wandb.init()", "artifact": "wandb.Artifact()"},
)
