"""The copyable pipeline: DAG params derived from the core configs, run folders, no harness code.

Only ``pipeline/`` is what an Airflow user writes; these checks need no Airflow import except the
one that parses the DAG files in a worker (Airflow reads its configuration once, at import).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.tools.airflow import common
from mlopsbench.tools.airflow.pipeline import alerts, dag_support
from mlopsbench.usecases.common.params import config_from_params, config_params, flat_values
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig

Worker = Callable[..., tuple[int, dict[str, Any], Path]]
PIPELINE = common.DAGS_FOLDER
HARNESS_PLUMBING = re.compile(
    r"inject_failure|stage_seconds|core_stage|timed\(|StageTimer|perf_counter"
)


@pytest.mark.parametrize("config_class", [DigitsConfig, SentimentConfig])
def test_param_schema_follows_the_config_fields(config_class: type) -> None:
    json_types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    for spec in config_params(config_class):
        schema = dag_support.param_schema(spec)
        kind = json_types[spec.kind]
        assert schema["type"] == (["null", kind] if spec.optional else kind), spec.name
        assert schema["description"] == spec.description and schema["description"], spec.name
        if spec.choices:
            expected = [None, *spec.choices] if spec.optional else list(spec.choices)
            assert schema["enum"] == expected, spec.name
        else:
            assert "enum" not in schema


def test_optional_choice_accepts_null() -> None:
    [source] = [s for s in config_params(SentimentConfig) if s.name == "source"]
    assert dag_support.param_schema(source)["enum"][0] is None  # unset: told from the data path


@pytest.mark.parametrize(
    "config",
    [
        DigitsConfig(model="simple", epochs=2, lr=0.01, data=DigitsDataConfig(limit_train=100)),
        SentimentConfig(smoke=True, sample_size=20),
    ],
)
def test_conf_round_trips_to_the_same_config(config: Any, tmp_path: Path) -> None:
    conf = {**flat_values(config), "run_root": str(tmp_path), "mlflow_uri": None}
    assert config_from_params(type(config), dag_support.core_settings(conf)) == config


def test_run_folder_is_safe_and_keyed_by_run_id(tmp_path: Path) -> None:
    run_id = "manual__2026-01-02T03:04:05+00:00"
    folder = dag_support.run_folder(tmp_path, "mlopsbench_digits", run_id)
    assert folder.parent == tmp_path / "mlopsbench_digits"
    assert folder.name == "manual__2026-01-02T03_04_05_00_00"
    assert dag_support.run_folder(tmp_path, "d", "../../etc").resolve().is_relative_to(tmp_path)


def test_artifact_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dag_support.ENV_ARTIFACT_ROOT, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert dag_support.artifact_root({}) == tmp_path / "home" / "mlopsbench-artifacts"
    monkeypatch.setenv(dag_support.ENV_ARTIFACT_ROOT, str(tmp_path / "env"))
    assert dag_support.artifact_root({"run_root": None}) == tmp_path / "env"
    assert dag_support.artifact_root({"run_root": str(tmp_path / "param")}) == tmp_path / "param"
    monkeypatch.delenv(alerts.ENV_ALERT_LOG, raising=False)
    assert alerts.alerts_log_path({}) == tmp_path / "env" / "alerts.jsonl"


def test_dag_processor_skips_the_helper_modules() -> None:
    # Airflow executes every .py in the DAGs folder that mentions "airflow" and "dag":
    # .airflowignore names every file of pipeline/ that is not a DAG file.
    dag_files = {f"{dag_id}.py" for dag_id in common.served_dag_ids()}
    python_files = {p.name for p in PIPELINE.glob("*.py")}
    ignored = {
        line.strip()
        for line in (PIPELINE / ".airflowignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert python_files - dag_files == ignored
    assert not list(PIPELINE.glob("*/*.py"))  # no sub-folders for Airflow to walk


def test_pipeline_holds_no_harness_plumbing() -> None:
    files = sorted(PIPELINE.glob("*.py"))
    assert files
    found = {
        f"{path.name}:{number}": line.strip()
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if HARNESS_PLUMBING.search(line)
    }
    assert found == {}
    # The pipeline imports the core and its own helpers, never the adapter.
    for path in files:
        imports = re.findall(
            r"^\s*(?:from|import) (mlopsbench\.tools\.[\w.]+)", path.read_text(), re.M
        )
        assert all(name.startswith("mlopsbench.tools.airflow.pipeline") for name in imports), path


# Changes a core default before Airflow parses the DAG files (the worker imports sitecustomize).
_PATCH_DEFAULTS = textwrap.dedent(
    """
    import dataclasses

    from mlopsbench.usecases.digits.config import DigitsConfig
    from mlopsbench.usecases.sentiment.config import SentimentConfig


    def _patch(config_class, name, value):
        config_class.__dataclass_fields__[name].default = value
        names = [f.name for f in dataclasses.fields(config_class) if f.init]
        defaults = list(config_class.__init__.__defaults__)
        defaults[names.index(name) - (len(names) - len(defaults))] = value
        config_class.__init__.__defaults__ = tuple(defaults)


    _patch(DigitsConfig, "epochs", 7)
    _patch(SentimentConfig, "batch_size", 3)
    """
)


def test_a_changed_core_default_reaches_the_dag_params(
    tmp_path: Path, airflow_worker: Worker
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_PATCH_DEFAULTS)
    code, result, _ = airflow_worker(tmp_path, "inspect", extra_env={"PYTHONPATH": str(site)})
    assert code == 0, result
    assert result["import_errors"] == {}
    assert result["dags"]["mlopsbench_digits"]["params"]["epochs"] == 7
    assert result["dags"]["mlopsbench_sentiment"]["params"]["batch_size"] == 3
