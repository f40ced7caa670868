"""``mlopsbench kfp compile|submit`` (mounted by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
app = typer.Typer(
    help="Compile Kubeflow pipelines or submit them to a cluster.", no_args_is_help=True
)

ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        envvar="MLOPSBENCH_KFP_IMAGE",
        help="Component base image with mlopsbench installed (default mlopsbench:latest).",
    ),
]


@app.command("compile")
def compile_(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the compiled IR YAML files.")
    ] = Path("compiled"),
    usecase: Annotated[str, typer.Option("--usecase", "-u", help="A use case, or all.")] = "all",
    image: ImageOpt = None,
) -> None:
    """Compile the pipelines to KFP IR YAML (build outputs: regenerate, don't edit)."""
    from mlopsbench.tools.kfp.build import KfpSettings, compile_all
    from mlopsbench.usecases.registry import USECASE_NAMES, get_usecase

    usecases = USECASE_NAMES if usecase == "all" else (get_usecase(usecase).name,)
    settings = KfpSettings(image=image) if image else KfpSettings()
    for path in compile_all(out, settings, usecases):
        console.print(f"compiled {path}")


@app.command("submit")
def submit(
    host: Annotated[
        str, typer.Option(help="KFP API URL, e.g. http://127.0.0.1:8080 (a port-forward).")
    ],
    usecase: Annotated[str, typer.Option("--usecase", "-u", help="The use case to run.")] = (
        "digits"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A setting of the use case, KEY=VALUE (repeatable), e.g. --set epochs=3; "
            "paths are read inside the cluster's pods.",
        ),
    ] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment to run in.")] = "mlopsbench",
    package: Annotated[
        Path | None, typer.Option(help="A compiled pipeline YAML (default: compile now).")
    ] = None,
    image: ImageOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Run name shown in the KFP UI.")] = None,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI reachable from the pods.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the host to answer.")] = 3.0,
) -> None:
    """Compile and submit a pipeline run to a Kubeflow Pipelines cluster."""
    from mlopsbench.tools.kfp.build import KfpSettings, pipeline_arguments
    from mlopsbench.tools.kfp.submit import submit as submit_run
    from mlopsbench.usecases.common.params import apply_overrides, flat_values
    from mlopsbench.usecases.registry import get_usecase

    case = get_usecase(usecase)
    types = {s.name: s.kind.__name__ + (" | None" if s.optional else "") for s in case.params()}
    values = apply_overrides(flat_values(case.config()), set_ or [], types)
    cfg = case.config(values)  # validated here, before anything is compiled or sent
    arguments = {**pipeline_arguments(cfg), "mlflow_uri": mlflow_uri or ""}
    settings = KfpSettings(image=image) if image else KfpSettings()
    info = submit_run(
        host,
        case.name,
        arguments,
        settings=settings,
        experiment=experiment,
        run_name=run_name,
        package=package,
        timeout_s=timeout,
    )
    console.print(f"submitted run {info['run_id']}: {info['url']}")
