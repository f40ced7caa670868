"""The paper's Airflow DAGs (Airflow 2 style) no longer run on Airflow 3: each call they make is
tried on the installed Airflow, as the report's documentation evidence says. Airflow runs in a
child process with its own home, as everywhere in this suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from mlopsbench.tools.airflow.common import airflow_env

PAPER_CALLS = textwrap.dedent(
    """
    import importlib, json
    import airflow
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.python import PythonOperator

    def attempt(call):
        try:
            call()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    def operator():
        with DAG("paper_style_operator", schedule=None):
            PythonOperator(task_id="train", python_callable=print, provide_context=True)

    print(json.dumps({
        "version": airflow.__version__,
        "import": attempt(lambda: importlib.import_module("airflow.operators.python_operator")),
        "dag": attempt(lambda: DAG("paper_style", schedule_interval=None)),
        "operator": attempt(operator),
    }))
    """
)


def test_the_papers_dag_calls_fail_on_airflow_3(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PAPER_CALLS],
        env=airflow_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert int(found["version"].split(".")[0]) >= 3
    assert found["import"].startswith("ModuleNotFoundError")  # the paper's import
    assert found["dag"].startswith("TypeError") and "schedule_interval" in found["dag"]
    assert "provide_context" in found["operator"]  # the paper's operator argument
