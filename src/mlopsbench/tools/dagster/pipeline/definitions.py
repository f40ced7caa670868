"""The code location: every use case's assets, checks, jobs and resources in one ``Definitions``.

Browse and materialise them in the UI (runs, events and files go to ``$DAGSTER_HOME``)::

    export DAGSTER_HOME=$PWD/runs/dagster-home    # holding a dagster.yaml, e.g. telemetry off
    dagster dev -m mlopsbench.tools.dagster.pipeline.definitions -h 127.0.0.1 -p 3000

Each use case is a group of assets with a job that materialises it (``digits_pipeline``,
``sentiment_pipeline``, ``sweep_pipeline``); its settings are the resource
``<use case>_settings``, whose defaults are the core config's. ``sweep_nightly`` schedules the
sweep (it runs once ``dagster dev``'s daemon has it turned on). ``$MLFLOW_TRACKING_URI``, when
set, makes the runs log to MLflow too.
"""

from __future__ import annotations

import os

from dagster import Definitions

from mlopsbench.tools.dagster.pipeline import digits_assets, sentiment_assets, sweep_assets
from mlopsbench.tools.dagster.pipeline.resources import AssetFiles, MlflowTracking

defs = Definitions(
    assets=[
        digits_assets.digits_data,
        digits_assets.digits_model,
        digits_assets.digits_evaluation,
        digits_assets.digits_champion,
        digits_assets.digits_mlflow_run,
        sentiment_assets.sentiment_data,
        sentiment_assets.sentiment_model,
        sentiment_assets.sentiment_evaluation,
        sentiment_assets.sentiment_champion,
        sentiment_assets.sentiment_mlflow_run,
        sweep_assets.sweep_data,
        sweep_assets.sweep_model,
        sweep_assets.sweep_evaluation,
        sweep_assets.sweep_champion,
        sweep_assets.sweep_mlflow_run,
    ],
    asset_checks=[
        digits_assets.digits_quality_gate,
        sentiment_assets.sentiment_quality_gate,
        sweep_assets.sweep_quality_gate,
    ],
    jobs=[
        digits_assets.digits_pipeline,
        sentiment_assets.sentiment_pipeline,
        sweep_assets.sweep_pipeline,
    ],
    schedules=[sweep_assets.sweep_nightly],
    resources={
        "digits_settings": digits_assets.DigitsSettings(),
        "sentiment_settings": sentiment_assets.SentimentSettings(),
        "sweep_settings": sweep_assets.SweepSettings(),
        "files": AssetFiles(),
        "mlflow": MlflowTracking(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", "")),
    },
)
