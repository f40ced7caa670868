"""The Kubeflow pipelines a KFP user writes: components and ``@dsl.pipeline`` wiring.

* ``digits_pipeline.py``, ``sentiment_pipeline.py``: one use case each, its components and
  ``build_pipeline(image)`` (the file is found by the use case's name);
* ``sweep_pipeline.py``: the sweep scenario, ``dsl.ParallelFor`` over the planned trials and a
  ``dsl.Collected`` fan-in (``build_pipeline(image, workers)``: KFP's parallelism is compiled in);
* ``promote.py``: the quality-gated promotion component they all share;
* ``pipeline_helpers.py``: parameters from the core config, components for an image, retries;
* ``component_helpers.py``: what the components call while they run (config from the
  settings, stage results as metadata, metrics, the HTML report).
"""
