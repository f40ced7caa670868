"""Fixtures of the Airflow tests: a tiny webhook receiver and helpers to run the worker.

Airflow is never imported in the pytest process (it reads its configuration once, at import);
everything that needs it runs in a child process with an isolated AIRFLOW_HOME.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.tools.airflow.common import DAGS_FOLDER, airflow_env


@dataclass
class Webhook:
    """A Slack-like receiver on 127.0.0.1 (OS-chosen free port) that records JSON posts."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def events(self) -> list[str]:
        return [post.get("details", {}).get("event") for post in self.received]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            hook.received.append(json.loads(self.rfile.read(length)))
            self.send_response(hook.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret-token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def quiet_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """One OpenMP thread in child processes: t-SNE on 2 busy cores is ~7x faster that way."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def airflow_worker() -> Callable[..., tuple[int, dict[str, Any], Path]]:
    """``airflow_worker(tmp, command, request, ...)``: run the worker in an isolated home (see
    run_worker)."""
    return run_worker


def run_worker(
    tmp: Path,
    command: str,
    request: dict[str, Any] | None = None,
    *,
    dags_folder: Path = DAGS_FOLDER,
    extra_env: dict[str, str] | None = None,
    timeout: float = 240,
) -> tuple[int, dict[str, Any], Path]:
    """Run ``python -m mlopsbench.tools.airflow.worker COMMAND --request R.json`` in an isolated
    home under ``tmp``, the way the adapter does (exit code kept: the tests check it).

    Returns (exit code, its JSON result, the home folder).
    """
    home = tmp / "airflow_home"
    result = tmp / "worker.json"
    request_path = tmp / "worker-request.json"
    request_path.write_text(json.dumps(request or {}))
    env = airflow_env(
        home,
        artifact_root=tmp / "artifacts",
        dags_folder=dags_folder,
        alerts_log=tmp / "alerts.jsonl",
        extra={"OMP_NUM_THREADS": "1", **(extra_env or {})},
    )
    args = [sys.executable, "-m", "mlopsbench.tools.airflow.worker", command]
    args += ["--request", str(request_path), "--result", str(result)]
    with open(tmp / "worker.log", "wb") as log:
        done = subprocess.run(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    payload = json.loads(result.read_text()) if result.exists() else {}
    return done.returncode, payload, home


@pytest.fixture
def service_dir(tmp_path: Path) -> Iterator[Path]:
    """A home for a deployment with PostgreSQL: ``tmp_path`` when we are not root; as root, a
    fresh folder under /tmp that the ``postgres`` user can enter (pytest's own temporary
    folders are 0700, root's only)."""
    import os
    import shutil
    import tempfile

    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mlopsbench-airflow-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
