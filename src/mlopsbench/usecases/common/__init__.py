"""Pieces both use cases share: metrics, the quality gate, stage timing."""
