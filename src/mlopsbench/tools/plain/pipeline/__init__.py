"""The pipeline without an MLOps tool: what every tool's pipeline is compared against."""
