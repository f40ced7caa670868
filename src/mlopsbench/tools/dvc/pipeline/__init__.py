"""What a DVC user writes: ``<use case>/dvc.yaml``, the stage scripts in ``stages/`` and
``write_params.py`` (``params.yaml`` from the core's config)."""
