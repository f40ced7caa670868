"""What a Dagster user writes: assets per use case, their resources, one code location.

``definitions.py`` is the code location (``dagster dev -m
mlopsbench.tools.dagster.pipeline.definitions``); ``digits_assets.py`` and
``sentiment_assets.py`` hold each use case's assets, quality-gate check and job;
``sweep_assets.py`` the sweep (a graph-backed asset fanning out one step per trial), its job and
its schedule; ``resources.py`` the resources they share; ``metadata.py`` turns what a core
stage returned into the metadata the UI shows.
"""
