"""``mlopsbench kfp submit``: fast one-line errors; the kfp.Client path against a fake API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.tools.kfp.build import KfpSettings, pipeline_arguments
from mlopsbench.tools.kfp.submit import HEALTHZ, check_host, submit
from mlopsbench.usecases.registry import get_usecase


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


class _FakeKfp(BaseHTTPRequestHandler):
    """Answers healthz like KFP; every other route 404s (so the run creation is refused)."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path.split('?')[0]}")
        if self.path == HEALTHZ and self.server.healthy:  # type: ignore[attr-defined]
            self._send(200, {"multi_user": False})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path.split('?')[0]}")
        self._send(404, {"error": "not found"})

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def fake_kfp(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)  # a free port, never a fixed one
    server.healthy = getattr(request, "param", True)  # type: ignore[attr-defined]
    _FakeKfp.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_closed_port_fails_fast_with_one_line() -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["kfp", "submit", "--host", host, "--set", "epochs=1"])
    elapsed = time.perf_counter() - t0
    assert result.exit_code == 1
    assert result.output.strip() == f"error: KFP host {host} is unreachable (connection error)"
    assert elapsed < 5.0


def test_bad_host_and_bad_params_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="http"):
        check_host("127.0.0.1:8080")
    runner = CliRunner()
    host = ["kfp", "submit", "--host", "http://127.0.0.1:1"]
    bad = runner.invoke(app, [*host, "--set", "epochs=0"])
    assert bad.exit_code == 2 and "epochs must be >= 1" in bad.output
    mixed = runner.invoke(app, [*host, "--set", "smoke=true"])  # a sentiment setting
    assert mixed.exit_code == 2 and "unknown config key 'smoke'" in mixed.output
    typo = runner.invoke(app, [*host, "--set", "epochs"])
    assert typo.exit_code == 2 and "KEY=VALUE" in typo.output
    assert "Traceback" not in bad.output + mixed.output + typo.output


@pytest.mark.parametrize("fake_kfp", [False], indirect=True)
def test_non_kfp_endpoint_is_rejected_before_the_client_retries(fake_kfp: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="HTTP 404"):
        check_host(fake_kfp)
    assert time.perf_counter() - t0 < 3.0


def test_submit_reaches_the_api_and_reports_a_refused_run(fake_kfp: str) -> None:
    cfg = get_usecase("digits").config({"model": "simple", "epochs": 1})
    args = pipeline_arguments(cfg)
    t0 = time.perf_counter()
    with pytest.raises(ServerError, match="refused the run: HTTP 404"):
        submit(fake_kfp, "digits", args, settings=KfpSettings(), experiment="e1")
    assert time.perf_counter() - t0 < 10.0
    # kfp.Client really talked to the API: healthz, then the experiment lookup.
    assert f"GET {HEALTHZ}" in _FakeKfp.seen
    assert any("/experiments" in call for call in _FakeKfp.seen)
