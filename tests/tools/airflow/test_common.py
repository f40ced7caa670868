"""Params <-> core configs, run folders and the isolated environment (no Airflow import)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.tools.airflow import common
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.sentiment.config import SentimentConfig


@pytest.mark.parametrize(
    ("usecase", "config"), [("digits", DigitsConfig()), ("sentiment", SentimentConfig())]
)
def test_params_mirror_the_core_config(usecase: str, config: object) -> None:
    specs = common.param_specs(usecase)
    core_keys = set(config.to_dict())  # type: ignore[attr-defined]
    assert set(specs) == core_keys | set(common.TOOL_PARAMS)
    for key in core_keys:
        assert specs[key][0] == config.to_dict()[key], key  # type: ignore[attr-defined]
    for _default, schema, description in specs.values():
        assert "type" in schema and description
        assert "see SentimentConfig" not in description  # every field has an explicit spec


def test_conf_round_trips_to_the_same_config(tmp_path: Path) -> None:
    digits = DigitsConfig(model="simple", epochs=2, lr=0.01, data=DigitsDataConfig(limit_train=100))
    conf = common.conf_from_config(digits, run_root=str(tmp_path), mlflow_uri=None)
    assert conf["run_root"] == str(tmp_path) and "mlflow_uri" not in conf
    assert common.config_from_params("digits", conf) == digits
    sentiment = SentimentConfig(smoke=True, sample_size=20)
    assert common.config_from_params("sentiment", common.conf_from_config(sentiment)) == sentiment


def test_bad_params_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        common.config_from_params("digits", {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown digits config keys: epoch"):
        common.config_from_params("digits", {"epoch": 3})
    with pytest.raises(ConfigError, match="unknown Airflow tool params"):
        common.conf_from_config(DigitsConfig(), webhook="x")
    with pytest.raises(ConfigError, match="unknown use case"):
        common.param_specs("audio")


def test_run_folder_is_safe_and_keyed_by_run_id(tmp_path: Path) -> None:
    folder = common.run_folder(tmp_path, "mlopsbench_digits", "manual__2026-01-02T03:04:05+00:00")
    assert folder.parent == tmp_path / "mlopsbench_digits"
    assert folder.name == "manual__2026-01-02T03_04_05_00_00"
    assert common.run_folder(tmp_path, "d", "../../etc").resolve().is_relative_to(tmp_path)


def test_artifact_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(common.ENV_ARTIFACT_ROOT, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert common.artifact_root({}) == tmp_path / "home" / "mlopsbench-artifacts"
    monkeypatch.setenv(common.ENV_ARTIFACT_ROOT, str(tmp_path / "env"))
    assert common.artifact_root({"run_root": None}) == tmp_path / "env"
    assert common.artifact_root({"run_root": str(tmp_path / "param")}) == tmp_path / "param"
    monkeypatch.delenv(common.ENV_ALERT_LOG, raising=False)
    assert common.alerts_log_path({}) == tmp_path / "env" / "alerts.jsonl"


def test_airflow_env_isolates_home_db_and_dags(tmp_path: Path) -> None:
    env = common.airflow_env(tmp_path / "h", artifact_root=tmp_path / "a", base={"PATH": "/bin"})
    assert env["AIRFLOW_HOME"] == str((tmp_path / "h").resolve())
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == f"sqlite:///{(tmp_path / 'h').resolve()}/airflow.db"
    )
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(common.DAGS_FOLDER)
    assert env[common.ENV_ARTIFACT_ROOT] == str((tmp_path / "a").resolve())
    assert env["PATH"] == "/bin"


def test_dags_folder_holds_only_dag_files() -> None:
    # Airflow executes every .py in DAGS_FOLDER that mentions "airflow" and "dag".
    files = {p.name for p in common.DAGS_FOLDER.glob("*.py")}
    assert files == {"__init__.py", "mlopsbench_digits.py", "mlopsbench_sentiment.py"}
    init = (common.DAGS_FOLDER / "__init__.py").read_text().lower()
    assert "airflow" not in init


def test_fallback_schema_follows_the_default_type() -> None:
    assert common._schema_for(3) == {"type": ["integer", "null"]}
    assert common._schema_for(True) == {"type": ["boolean", "null"]}
    assert common._schema_for(None)["type"][0] == "null"
