"""Alert payloads, webhook delivery and the local log; callbacks with Airflow-like contexts."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlopsbench.tools.airflow.metadata import read_alerts
from mlopsbench.tools.airflow.pipeline import alerts, dag_support


@pytest.fixture(autouse=True)
def no_airflow_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Variable fallback imports Airflow; these tests stay out of it.
    monkeypatch.setattr(alerts, "_webhook_variable", lambda: None)
    monkeypatch.delenv(alerts.ENV_ALERT_WEBHOOK, raising=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_payload_is_slack_compatible() -> None:
    payload = alerts.build_payload(
        "task_failed", dag_id="d", run_id="r1", task_id="quality_gate", try_number=1,
        error="quality gate FAILED: accuracy 0.5000 (threshold 0.9000)",
    )  # fmt: skip
    assert set(payload) == {"text", "details"}
    assert payload["text"].startswith(":x: [d] task `quality_gate` failed (try 1) in run r1")
    assert payload["details"]["event"] == "task_failed"
    ok = alerts.build_payload("dag_succeeded", dag_id="d", run_id="r", metrics={"accuracy": 0.9})
    assert ok["text"] == ":white_check_mark: [d] run r succeeded: accuracy 0.9000"
    with pytest.raises(ValueError, match="unknown alert event"):
        alerts.build_payload("exploded", dag_id="d", run_id="r")


def test_alert_reaches_webhook_and_log(webhook, tmp_path: Path) -> None:
    payload = alerts.build_payload("dag_failed", dag_id="d", run_id="r", reason="task_failure")
    record = alerts.send_alert(payload, webhook.url, tmp_path / "alerts.jsonl")
    assert webhook.received == [payload]
    assert record["delivery"] == {"sent": True, "host": "127.0.0.1", "status": 200}
    logged = read_alerts(tmp_path / "alerts.jsonl")
    assert logged == [record]
    assert "secret-token" not in (tmp_path / "alerts.jsonl").read_text()  # URL never logged


@pytest.mark.parametrize("target", ["http500", "refused", "not-http"])
def test_webhook_errors_never_raise(webhook, tmp_path: Path, target: str) -> None:
    webhook.status = 500
    url = {
        "http500": webhook.url,
        "refused": f"http://127.0.0.1:{_closed_port()}/hook",
        "not-http": "file:///etc/passwd",
    }[target]
    payload = alerts.build_payload("dag_failed", dag_id="d", run_id="r")
    record = alerts.send_alert(payload, url, tmp_path / "alerts.jsonl", timeout_s=2)
    assert record["delivery"]["sent"] is False and record["delivery"]["reason"]
    assert read_alerts(tmp_path / "alerts.jsonl")[0]["delivery"] == record["delivery"]


def test_unwritable_log_does_not_raise(tmp_path: Path) -> None:
    payload = alerts.build_payload("dag_failed", dag_id="d", run_id="r")
    (tmp_path / "dir.jsonl").mkdir()
    assert alerts.append_jsonl(payload, tmp_path / "dir.jsonl") is False
    alerts.send_alert(payload, None, tmp_path / "dir.jsonl")  # still no exception


def _context(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "params": {"run_root": str(tmp_path / "art"), **extra.pop("params", {})},  # type: ignore[dict-item]
        "dag": SimpleNamespace(dag_id="mlopsbench_digits"),
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "task_instance": SimpleNamespace(task_id="train_model", try_number=3),
        **extra,
    }


def test_task_failure_callback_posts_first_error_line(
    webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(alerts.ENV_ALERT_WEBHOOK, webhook.url)
    monkeypatch.delenv(alerts.ENV_ALERT_LOG, raising=False)
    context = _context(tmp_path, exception=RuntimeError("CUDA out of memory\n  traceback..."))
    alerts.on_task_failure(context)
    [post] = webhook.received
    assert post["details"]["task_id"] == "train_model" and post["details"]["try_number"] == 3
    assert post["details"]["error"] == "CUDA out of memory"
    # No ALERT_LOG set: the log sits at the artifact root given by the run's params.
    assert read_alerts(tmp_path / "art" / "alerts.jsonl")[0]["details"] == post["details"]


def test_success_callback_reports_metrics_and_param_webhook_wins(
    webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(alerts.ENV_ALERT_WEBHOOK, "http://127.0.0.1:9/never-used")
    monkeypatch.setenv(alerts.ENV_ALERT_LOG, str(tmp_path / "log.jsonl"))
    context = _context(tmp_path, params={"alert_webhook": webhook.url})
    folder = dag_support.run_folder(tmp_path / "art", "mlopsbench_digits", str(context["run_id"]))
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.93, "note": "x"}))
    alerts.on_dag_success(context)
    [post] = webhook.received
    assert post["text"].endswith("succeeded: accuracy 0.9300")
    assert post["details"]["metrics"] == {"accuracy": 0.93}
    assert post["details"]["run_dir"] == str(folder)


def test_callback_survives_a_broken_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(alerts.ENV_ALERT_LOG, str(tmp_path / "log.jsonl"))
    alerts.on_dag_failure({"params": None, "dag_run": object()})  # nothing usable: still no raise
    [record] = read_alerts(tmp_path / "log.jsonl")
    assert record["details"]["event"] == "dag_failed" and record["delivery"]["sent"] is False
