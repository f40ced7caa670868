"""Metaflow flows for both use cases (``digits_flow.py``, ``sentiment_flow.py``) and their runner.

Nothing is imported here: the harness imports ``runner`` lazily through the registry, and
Metaflow imports the flow files itself.
"""
