"""DVC: a ``dvc.yaml`` pipeline per use case, run with ``dvc repro``, experiments, DVCLive.

``pipeline/`` holds what a DVC user writes: ``<use case>/dvc.yaml`` (stages, deps, params,
outs, metrics, plots) and the stage scripts it calls, each one call into the core, with
DVCLive for the per-epoch metrics. ``params.yaml`` is not kept there: it is written from the
core config (``write_params.py``), so no default is restated. The rest is the adapter:
``project`` (a DVC project in the run folder), ``adapter`` (repro, no-op check, experiment,
record), ``readback`` (DVC's own CLI JSON and Python API) and ``sweep`` (each trial a DVC
experiment, run by ``dvc queue start --jobs <workers>``). Nothing is imported here.
"""

from mlopsbench.toolkit.spec import Tool

TOOL = Tool(
    name="dvc",
    title="DVC",
    description="DVC pipeline (dvc.yaml) run with dvc repro in a git repo, DVCLive, experiments",
    package=__name__,
    distributions=("dvc", "dvclive"),
    api_packages=("dvc", "dvclive", "gto"),
    colour="#945dd6",
    ui="dvc plots show (static HTML); VS Code extension / DVC Studio",
    services=(),
    services_note="No server: DVC is a CLI over git and a content-addressed cache; "
    "`dvc plots show` writes a static HTML page (its vega-lite plots load their JS from a CDN). "
    "Sharing data needs a remote (S3, SSH, ...); DVC Studio is a hosted UI.",
    sweep="sweep",
    conventional_instances={"live": "dvclive.Live()", "repo": "dvc.repo.Repo()"},
)
