"""What the DAGs, the runner and the server share, without importing Airflow.

DAG params mirror the core configs' ``to_dict()`` keys one for one (so a run's conf *is* the
config), plus three tool params: ``run_root`` (artifact root), ``mlflow_uri`` and
``alert_webhook``. Artifacts of a run live in ``<artifact root>/<dag_id>/<run_id>/``: the only
storage the tasks share, so it must be a volume every worker sees (see docs/airflow-executors.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlopsbench.errors import ConfigError

DIGITS_DAG_ID = "mlopsbench_digits"
SENTIMENT_DAG_ID = "mlopsbench_sentiment"
DAG_IDS = {"digits": DIGITS_DAG_ID, "sentiment": SENTIMENT_DAG_ID}
DAGS_FOLDER = Path(__file__).resolve().parent / "dags"

# Environment read by the DAG files (at parse time) and the tasks/callbacks (at run time).
ENV_ARTIFACT_ROOT = "MLOPSBENCH_ARTIFACT_ROOT"
ENV_ALERT_WEBHOOK = "MLOPSBENCH_ALERT_WEBHOOK"
ENV_ALERT_LOG = "MLOPSBENCH_ALERT_LOG"
ENV_SCHEDULE = "MLOPSBENCH_AIRFLOW_SCHEDULE"  # a cron expression; unset -> manual runs only
ENV_RETRIES = "MLOPSBENCH_AIRFLOW_RETRIES"
ENV_RETRY_DELAY = "MLOPSBENCH_AIRFLOW_RETRY_DELAY_S"
WEBHOOK_VARIABLE = "mlopsbench_alert_webhook"  # Airflow Variable, the UI-managed alternative
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 30.0

TOOL_PARAMS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "run_root": (
        None,
        {"type": ["null", "string"]},
        "Artifact root (default $MLOPSBENCH_ARTIFACT_ROOT).",
    ),
    "mlflow_uri": (
        None,
        {"type": ["null", "string"]},
        "MLflow tracking URI: also log the run there.",
    ),
    "alert_webhook": (
        None,
        {"type": ["null", "string"]},
        "Slack-compatible webhook for alerts (stored with the run: prefer the env/Variable).",
    ),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ------------------------------------------------------------------------------------------
# params <-> core configs
# ------------------------------------------------------------------------------------------


def param_specs(usecase: str) -> dict[str, tuple[Any, dict[str, Any], str]]:
    """``name -> (default, JSON schema, description)`` of every DAG param of a use case."""
    if usecase == "digits":
        specs = _digits_specs()
    elif usecase == "sentiment":
        specs = _sentiment_specs()
    else:
        raise ConfigError(f"unknown use case {usecase!r}; choose digits or sentiment")
    return {**specs, **TOOL_PARAMS}


def _digits_specs() -> dict[str, tuple[Any, dict[str, Any], str]]:
    from mlopsbench.usecases.digits.config import (
        DATA_SOURCES,
        MODEL_NAMES,
        PRECISIONS,
        DigitsConfig,
    )

    d = DigitsConfig().to_dict()
    return {
        "model": (
            d["model"],
            {"type": "string", "enum": list(MODEL_NAMES)},
            "simple, deep or cnn.",
        ),
        "epochs": (d["epochs"], {"type": "integer", "minimum": 1}, "Training epochs."),
        "lr": (d["lr"], {"type": "number", "exclusiveMinimum": 0}, "Adam learning rate."),
        "batch_size": (d["batch_size"], {"type": "integer", "minimum": 1}, "Mini-batch size."),
        "seed": (d["seed"], {"type": "integer"}, "Random seed."),
        "threshold": (d["threshold"], _unit_interval(), "Quality gate on test accuracy."),
        "precision": (
            d["precision"],
            {"type": "string", "enum": list(PRECISIONS)},
            "fp32, bf16, auto.",
        ),
        "device": (d["device"], {"type": "string", "enum": ["cpu", "cuda", "auto"]}, "Device."),
        "data_source": (
            d["data_source"],
            {"type": "string", "enum": list(DATA_SOURCES)},
            "Data source.",
        ),
        "data_path": (d["data_path"], {"type": ["null", "string"]}, "idx folder or npz file."),
        "data_test_fraction": (
            d["data_test_fraction"],
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "Test split (sklearn source).",
        ),
        "data_split_seed": (d["data_split_seed"], {"type": "integer"}, "Split seed."),
        "data_limit_train": (
            d["data_limit_train"],
            {"type": ["null", "integer"], "minimum": 1},
            "Cap on training images.",
        ),
    }


def _sentiment_specs() -> dict[str, tuple[Any, dict[str, Any], str]]:
    from mlopsbench.usecases.sentiment.config import (
        DEVICES,
        PRECISIONS,
        SOURCES,
        TRUNCATIONS,
        SentimentConfig,
    )

    # The unresolved defaults: ``source`` None means fixture with smoke, hf without.
    fields = SentimentConfig.__dataclass_fields__
    d = {name: field.default for name, field in fields.items()}
    opt_int = {"type": ["null", "integer"]}
    specs = {
        "smoke": (d["smoke"], {"type": "boolean"}, "Tiny offline model + bundled fixture reviews."),
        "model_path": (d["model_path"], {"type": ["null", "string"]}, "Local checkpoint folder."),
        "model_name": (d["model_name"], {"type": "string", "minLength": 1}, "Hub model name."),
        "source": (
            d["source"],
            {"type": ["null", "string"], "enum": [None, *SOURCES]},
            "Data source.",
        ),
        "data_path": (d["data_path"], {"type": ["null", "string"]}, "aclImdb folder or data file."),
        "sample_size": (d["sample_size"], {**opt_int, "minimum": 2}, "Test reviews (even)."),
        "seed": (d["seed"], {"type": "integer"}, "Random seed."),
        "max_length": (d["max_length"], {"type": "integer", "minimum": 8}, "Truncation length."),
        "truncation": (
            d["truncation"],
            {"type": "string", "enum": list(TRUNCATIONS)},
            "tokens/chars.",
        ),
        "batch_size": (d["batch_size"], {"type": "integer", "minimum": 1}, "Inference batch size."),
        "fine_tune": (d["fine_tune"], {"type": "boolean"}, "Fine-tune before evaluating."),
        "fine_tune_epochs": (d["fine_tune_epochs"], {**opt_int, "minimum": 1}, "Fine-tune epochs."),
        "fine_tune_lr": (
            d["fine_tune_lr"],
            {"type": ["null", "number"], "exclusiveMinimum": 0},
            "Fine-tune learning rate.",
        ),
        "fine_tune_batch_size": (
            d["fine_tune_batch_size"],
            {"type": "integer", "minimum": 1},
            "Fine-tune batch size.",
        ),
        "train_sample_size": (d["train_sample_size"], {**opt_int, "minimum": 2}, "Train reviews."),
        "threshold": (d["threshold"], _unit_interval(), "Quality gate on accuracy."),
        "precision": (d["precision"], {"type": "string", "enum": list(PRECISIONS)}, "Precision."),
        "device": (d["device"], {"type": "string", "enum": list(DEVICES)}, "Device."),
    }
    # A field added to the config later still gets a (type-only) param instead of breaking
    # every run with "unknown param"; tests flag the missing explicit spec.
    for name in fields.keys() - specs.keys():
        specs[name] = (d[name], _schema_for(d[name]), f"{name} (see SentimentConfig).")
    return specs


def _schema_for(default: Any) -> dict[str, Any]:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    kind = kinds.get(type(default))
    return {"type": [kind, "null"]} if kind else {"type": ["null", "string", "number", "boolean"]}


def _unit_interval() -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1}


def config_from_params(usecase: str, params: Mapping[str, Any]) -> Any:
    """The core config a run's params describe (ConfigError on invalid values)."""
    core = {k: v for k, v in params.items() if k not in TOOL_PARAMS}
    if usecase == "digits":
        from mlopsbench.usecases.digits.config import DigitsConfig

        return DigitsConfig.from_dict(core)
    if usecase == "sentiment":
        from mlopsbench.usecases.sentiment.config import SentimentConfig

        return SentimentConfig.from_dict(core)
    raise ConfigError(f"unknown use case {usecase!r}; choose digits or sentiment")


def conf_from_config(config: Any, **tool_params: Any) -> dict[str, Any]:
    """A DAG run conf for a core config (what ``dag.test(run_conf=...)`` or the REST API get)."""
    unknown = set(tool_params) - set(TOOL_PARAMS)
    if unknown:
        raise ConfigError(f"unknown Airflow tool params: {', '.join(sorted(unknown))}")
    return {**config.to_dict(), **{k: v for k, v in tool_params.items() if v is not None}}


# ------------------------------------------------------------------------------------------
# where runs keep their files
# ------------------------------------------------------------------------------------------


def artifact_root(params: Mapping[str, Any] | None = None) -> Path:
    """Param ``run_root``, else ``$MLOPSBENCH_ARTIFACT_ROOT``, else ``$AIRFLOW_HOME/mlopsbench-artifacts``."""
    explicit = (params or {}).get("run_root") or os.environ.get(ENV_ARTIFACT_ROOT)
    if explicit:
        return Path(str(explicit)).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "mlopsbench-artifacts"


def safe_name(text: str) -> str:
    """A run id as a folder name (``manual__2026-01-01T00:00:00+00:00`` has ``:`` and ``+``)."""
    return _UNSAFE.sub("_", text).strip("._") or "run"


def run_folder(root: str | Path, dag_id: str, run_id: str) -> Path:
    """``<root>/<dag_id>/<run_id>/``: every file one DAG run writes."""
    return Path(root) / safe_name(dag_id) / safe_name(run_id)


def alerts_log_path(params: Mapping[str, Any] | None = None) -> Path:
    """``$MLOPSBENCH_ALERT_LOG``, else ``<artifact root>/alerts.jsonl``."""
    explicit = os.environ.get(ENV_ALERT_LOG)
    return Path(explicit).expanduser() if explicit else artifact_root(params) / "alerts.jsonl"


# ------------------------------------------------------------------------------------------
# an isolated Airflow installation
# ------------------------------------------------------------------------------------------


def last_log_line(path: Path) -> str:
    """The last non-blank line of a log (capped), for one-line errors that point at the log."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip()[:300] if lines else "no output"


def sqlite_url(db_path: str | Path) -> str:
    return f"sqlite:///{Path(db_path).resolve()}"


def airflow_env(
    home: str | Path,
    *,
    artifact_root: str | Path,
    dags_folder: str | Path = DAGS_FOLDER,
    alerts_log: str | Path | None = None,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for an Airflow process confined to ``home`` (SQLite DB, our DAGs only).

    Airflow reads configuration once, at import: these must be in the environment of the
    process before it imports Airflow, which is why runs and servers use child processes.
    """
    home = Path(home).resolve()
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_url(home / "airflow.db"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            ENV_ARTIFACT_ROOT: str(Path(artifact_root).resolve()),
            # Keep tasks off the network and quiet (HF hub, MLflow telemetry).
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
        }
    )
    if alerts_log is not None:
        env[ENV_ALERT_LOG] = str(Path(alerts_log).resolve())
    env.update(extra or {})
    return env
