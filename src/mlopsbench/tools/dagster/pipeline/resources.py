"""The resources the assets share: a use case's settings, where files go, MLflow.

Resources are configured once per run (in ``Definitions`` and, per run, in the run config's
``resources:`` block) and handed to every asset that names them, so the three assets of a run
always see the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pydantic
from dagster import AssetExecutionContext, ConfigurableResource, OpExecutionContext

from mlopsbench.usecases.common.params import config_from_params, config_params


class CoreSettings(ConfigurableResource):
    """A use case's settings: one field per setting of its core config dataclass."""

    config_class: ClassVar[type]

    def core_config(self) -> Any:
        """The core config these settings stand for (the core validates the values)."""
        values = {spec.name: getattr(self, spec.name) for spec in config_params(self.config_class)}
        return config_from_params(self.config_class, values)


def core_settings(config_class: type) -> type[CoreSettings]:
    """A ``CoreSettings`` class whose fields are the settings of ``config_class``.

    Names, types, defaults and help text come from the core's dataclass, so the launchpad and
    the run config schema show the core's own defaults; a setting the core allows to be None
    ("use the derived default") is optional here too.
    """
    fields: dict[str, Any] = {
        spec.name: (
            spec.kind | None if spec.optional else spec.kind,
            pydantic.Field(default=spec.default, description=spec.description),
        )
        for spec in config_params(config_class)
    }
    settings: type[CoreSettings] = pydantic.create_model(  # type: ignore[call-overload]
        f"{config_class.__name__}Settings", __base__=CoreSettings, **fields
    )
    settings.config_class = config_class
    return settings


class AssetFiles(ConfigurableResource):
    """Where a materialisation writes its files: ``<root>/<asset>/<run id>/``.

    An empty root means ``artifacts/`` in the instance's home (``$DAGSTER_HOME``), beside the
    runs, events and stored values they belong to. Every run keeps its own folder, so the paths
    an earlier materialisation recorded in its metadata stay valid.
    """

    root: str = ""

    def folder(
        self, context: AssetExecutionContext | OpExecutionContext, asset: str | None = None
    ) -> Path:
        """The running materialisation's own folder (created); an op inside a graph-backed
        asset names the asset it works for."""
        root = Path(self.root) if self.root else Path(context.instance.root_directory) / "artifacts"
        path = root / (asset or context.asset_key.to_user_string()) / context.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path


class MlflowTracking(ConfigurableResource):
    """Also record a run in MLflow (params, metrics, plots, model, dataset); empty: don't."""

    tracking_uri: str = ""

    def log_run(
        self,
        context: AssetExecutionContext,
        usecase: str,
        settings: CoreSettings,
        stage_results: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Log what the three stages returned (``data``, ``model``, ``evaluation``)."""
        from mlopsbench.tracking import log_stages_to_mlflow

        return log_stages_to_mlflow(
            self.tracking_uri,
            tool="dagster",
            usecase=usecase,
            run_name=f"{context.job_name}-{context.run_id[:8]}",
            config=settings.core_config(),
            data=stage_results["data"],
            model=stage_results["model"],
            evaluation=stage_results["evaluation"],
            tags={"dagster.run_id": context.run_id, "dagster.job": context.job_name},
        )
