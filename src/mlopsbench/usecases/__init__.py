"""Pure ML use cases: data, models, training and evaluation. No MLOps tool is imported here."""
