"""What an MLflow user writes: the tracking script (``run_pipeline.py``) and the model file it
logs as MLflow "models from code" (``pyfunc_model.py``)."""
