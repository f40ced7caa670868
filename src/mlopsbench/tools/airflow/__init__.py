"""Airflow 3 DAGs for both use cases (``dags/``), their in-process runner and a local server.

Nothing is imported here: Airflow reads its configuration when it is first imported, so the
runner and the server start Airflow in child processes whose environment is set up first.
"""
