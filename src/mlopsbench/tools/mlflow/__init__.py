"""MLflow pipelines: tracking, a registry with a gated ``champion`` alias, server and serving.

Modules: ``runner`` (the tool runner: ``run``/``evidence``), ``core`` (the use-case stages the
runner calls), ``registry`` (validation from the registry and promotion), ``server`` (``mlflow
server`` / ``mlflow models serve`` process management). Nothing is imported here: the package
is imported by the CLI only when an MLflow command runs.
"""
