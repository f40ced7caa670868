"""The paper's second MLflow script, done properly: validate the candidate *from the registry*.

The candidate version is loaded by ``models:/<name>/<version>`` (what serving would load, not
the in-memory model), scored on the test split, and promoted with the ``champion`` alias only
if it passes the quality gate. A rejected version is tagged and the alias does not move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlopsbench import tracking
from mlopsbench.tools.mlflow import core
from mlopsbench.usecases.common.gate import GateResult, check_gate

VALIDATION_PREFIX = "validation_"
STATUS_TAG = "validation_status"


@dataclass(frozen=True)
class Promotion:
    """What happened to the alias: the record's "alias state"."""

    alias: str
    promoted: bool
    validation_status: str  # "approved" | "rejected"
    previous_champion: str | None  # version the alias pointed to before
    champion_version: str | None  # version it points to now

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_version(
    client: Any,
    usecase: str,
    name: str,
    version: str,
    data_path: str,
    threshold: float,
    run_id: str | None = None,
) -> tuple[dict[str, float], GateResult]:
    """Load ``models:/name/version``, score it on the test split, log and return the metrics."""
    from mlopsbench.usecases.common.metrics import classification_report

    model = tracking.load_registered_model(f"models:/{name}/{version}")
    data = core.validation_set(usecase, data_path)
    y_pred = core.predictions_to_ids(model.predict(data.model_input))
    report = classification_report(data.y_true, y_pred, data.labels)
    metrics = report.flat_metrics(prefix=VALIDATION_PREFIX)
    gate = check_gate(report.accuracy, threshold)
    if run_id is not None:
        tracking.log_batch(client, run_id, metrics=metrics)
    client.set_model_version_tag(name, version, "validation_accuracy", f"{report.accuracy:.6f}")
    client.set_model_version_tag(name, version, "validation_threshold", f"{threshold:.6f}")
    return metrics, gate


def current_champion(client: Any, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, tracking.CHAMPION).version)
    except MlflowException:
        return None


def promote_if_passed(client: Any, name: str, version: str, gate: GateResult) -> Promotion:
    """Move ``champion`` to ``version`` only when the gate passed; tag the version either way."""
    previous = current_champion(client, name)
    if gate.passed:
        client.set_registered_model_alias(name, tracking.CHAMPION, version)
        client.set_model_version_tag(name, version, STATUS_TAG, "approved")
        champion: str | None = version
    else:
        client.set_model_version_tag(name, version, STATUS_TAG, "rejected")
        client.set_model_version_tag(name, version, "validation_message", gate.message)
        champion = previous
    return Promotion(
        alias=tracking.CHAMPION,
        promoted=gate.passed,
        validation_status="approved" if gate.passed else "rejected",
        previous_champion=previous,
        champion_version=champion,
    )
