"""What a ZenML user writes: a pipeline per use case and the steps and helpers they share.

* ``digits_pipeline.py``, ``sentiment_pipeline.py``: one use case each, its steps, the
  ``@pipeline`` and ``run_pipeline(cfg)`` (the adapter finds the file by the use case's name);
* ``sweep_pipeline.py``: the sweep scenario, a dynamic pipeline that maps a step over the trials;
* ``shared_steps.py``: the quality gate that promotes the model version, and the MLflow step;
* ``pipeline_helpers.py``: parameters from the core config, step folders, file hand-overs;
* ``report.py``: the evaluation as an HTML artifact the dashboard shows.
"""
