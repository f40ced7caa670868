"""Alerting: Airflow callbacks that post a Slack-compatible message and keep a local log.

Every alert is appended as one JSON line to the alerts log (``$MLOPSBENCH_ALERT_LOG``, else
``<artifact root>/alerts.jsonl``) and, when a webhook URL is configured, POSTed to it as
``{"text": "...", "details": {...}}`` (Slack incoming webhooks read ``text``; other receivers
get the details). The URL comes from the run's ``alert_webhook`` param, else
``$MLOPSBENCH_ALERT_WEBHOOK``, else the Airflow Variable ``mlopsbench_alert_webhook``.

A callback must never fail the task or the run it reports on: every error here (unreachable
webhook, HTTP 500, unwritable log) is caught and recorded in the log line instead.
No Airflow import at module level: the DAG files import this module at parse time.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlopsbench.tools.airflow.pipeline.dag_support import artifact_root, run_folder

log = logging.getLogger(__name__)

ENV_ALERT_WEBHOOK = "MLOPSBENCH_ALERT_WEBHOOK"
ENV_ALERT_LOG = "MLOPSBENCH_ALERT_LOG"
WEBHOOK_VARIABLE = "mlopsbench_alert_webhook"  # Airflow Variable, the UI-managed alternative

WEBHOOK_TIMEOUT_S = 5.0
EVENTS = ("task_failed", "dag_failed", "dag_succeeded")
_ICONS = {"task_failed": ":x:", "dag_failed": ":x:", "dag_succeeded": ":white_check_mark:"}


# ------------------------------------------------------------------------------------------
# the Airflow callbacks (referenced from default_args and the @dag decorator)
# ------------------------------------------------------------------------------------------


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Task-level ``on_failure_callback``: a task failed for good (no retry left)."""
    _notify_safely("task_failed", context)


def on_dag_failure(context: Mapping[str, Any]) -> None:
    """DAG-level ``on_failure_callback``: the run ended ``failed``."""
    _notify_safely("dag_failed", context)


def on_dag_success(context: Mapping[str, Any]) -> None:
    """DAG-level ``on_success_callback``: the run ended ``success``."""
    _notify_safely("dag_succeeded", context)


def _notify_safely(event: str, context: Mapping[str, Any]) -> None:
    try:
        notify(event, context)
    except Exception:  # an alert must never turn into a task or run failure
        log.exception("mlopsbench alert %s could not be sent", event)


def notify(event: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Build the alert for ``event`` from an Airflow callback context, send it and log it."""
    params = _params(context)
    payload = build_payload(event, **_facts(context, params))
    return send_alert(payload, resolve_webhook(params), alerts_log_path(params))


# ------------------------------------------------------------------------------------------
# payload
# ------------------------------------------------------------------------------------------


def build_payload(
    event: str,
    *,
    dag_id: str,
    run_id: str,
    task_id: str | None = None,
    try_number: int | None = None,
    error: str | None = None,
    reason: str | None = None,
    metrics: Mapping[str, float] | None = None,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """A Slack-compatible message: one readable ``text`` line plus machine-readable details."""
    if event not in EVENTS:
        raise ValueError(f"unknown alert event {event!r}")
    if event == "task_failed":
        summary = f"task `{task_id}` failed (try {try_number}) in run {run_id}: {error or 'no error message'}"
    elif event == "dag_failed":
        summary = f"run {run_id} failed" + (f" ({reason})" if reason else "")
    else:
        score = f": accuracy {metrics['accuracy']:.4f}" if metrics and "accuracy" in metrics else ""
        summary = f"run {run_id} succeeded{score}"
    details = {
        "event": event,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": try_number,
        "error": error,
        "reason": reason,
        "metrics": dict(metrics or {}),
        "run_dir": run_dir,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {"text": f"{_ICONS[event]} [{dag_id}] {summary}", "details": details}


def _params(context: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return dict(context.get("params") or {})
    except Exception:
        return {}


def _facts(context: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """What the alert says, read defensively: task and DAG contexts carry different keys."""
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = str(
        getattr(dag, "dag_id", None)
        or getattr(dag_run, "dag_id", None)
        or getattr(ti, "dag_id", "?")
    )
    run_id = str(context.get("run_id") or getattr(dag_run, "run_id", None) or "?")
    exception = context.get("exception")
    error = _one_line(exception) if exception is not None else None
    folder = run_folder(artifact_root(params), dag_id, run_id)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": error,
        "reason": _text_or_none(context.get("reason")),
        "metrics": _read_metrics(folder),
        "run_dir": str(folder),
    }


def _one_line(exc: Any) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _read_metrics(folder: Path) -> dict[str, float]:
    """Final metrics the evaluate task wrote (empty before evaluation or on a broken file)."""
    try:
        values = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


# ------------------------------------------------------------------------------------------
# delivery
# ------------------------------------------------------------------------------------------


def alerts_log_path(params: Mapping[str, Any] | None = None) -> Path:
    """``$MLOPSBENCH_ALERT_LOG``, else ``<artifact root>/alerts.jsonl``."""
    explicit = os.environ.get(ENV_ALERT_LOG)
    return Path(explicit).expanduser() if explicit else artifact_root(params) / "alerts.jsonl"


def resolve_webhook(params: Mapping[str, Any] | None = None) -> str | None:
    """Param ``alert_webhook``, else ``$MLOPSBENCH_ALERT_WEBHOOK``, else the Airflow Variable."""
    url = (params or {}).get("alert_webhook") or os.environ.get(ENV_ALERT_WEBHOOK)
    if url:
        return str(url).strip() or None
    return _webhook_variable()


def _webhook_variable() -> str | None:
    try:
        from airflow.sdk import Variable

        value = Variable.get(WEBHOOK_VARIABLE, default=None)
    except Exception:  # no Airflow, no DB, no API: the Variable is optional
        return None
    text = str(value).strip() if value else ""
    return text or None


def send_alert(
    payload: Mapping[str, Any],
    webhook_url: str | None,
    log_path: str | Path | None,
    timeout_s: float = WEBHOOK_TIMEOUT_S,
) -> dict[str, Any]:
    """POST ``payload`` (if a URL is given) and append it, with the outcome, to the log.

    Returns the logged record. Never raises: delivery and log errors are recorded/logged.
    """
    record: dict[str, Any] = {**payload, "delivery": deliver(payload, webhook_url, timeout_s)}
    if log_path is not None:
        append_jsonl(record, log_path)
    return record


def deliver(
    payload: Mapping[str, Any], webhook_url: str | None, timeout_s: float
) -> dict[str, Any]:
    """Outcome of one POST; the URL itself is not recorded (webhook URLs embed secrets)."""
    if not webhook_url:
        return {"sent": False, "reason": "no webhook configured"}
    host = urlparse(webhook_url).hostname or "?"
    if urlparse(webhook_url).scheme not in ("http", "https"):
        return {"sent": False, "host": host, "reason": "webhook URL must be http(s)"}
    request = urllib.request.Request(
        webhook_url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return {"sent": True, "host": host, "status": response.status}
    except urllib.error.HTTPError as exc:
        return {"sent": False, "host": host, "status": exc.code, "reason": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"sent": False, "host": host, "reason": _one_line(reason)}


def append_jsonl(record: Mapping[str, Any], path: str | Path) -> bool:
    """Append one JSON line in a single write (concurrent tasks don't interleave lines)."""
    line = (json.dumps(record, default=str) + "\n").encode()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot append to alerts log %s: %s", path, exc)
        return False
    return True
