"""A private Redis per server: 127.0.0.1, protected mode, a password per start, no persistence."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from mlopsbench.errors import ConfigError
from mlopsbench.support import redis
from mlopsbench.support.net import port_in_use


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not redis.installed(), reason="Redis is not installed (apt-get install redis-server)"
)
def test_redis_answers_only_with_its_password_on_loopback(tmp_path: Path) -> None:
    server = redis.start(redis.RedisSettings(root=tmp_path / "redis"))
    try:
        assert redis.ping(server.port, server.password)
        assert not redis.ping(server.port, "wrong")
        assert server.url() == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
        listening = {
            c.laddr.ip
            for c in psutil.Process(server.proc.process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        config = tmp_path / "redis" / redis.CONFIG_FILE
        assert config.stat().st_mode & 0o777 == 0o600
        text = config.read_text()
        for line in ("bind 127.0.0.1", "protected-mode yes", 'save ""', "appendonly no"):
            assert line in text.splitlines()
        first = server.password
    finally:
        redis.stop(server)
    assert not server.alive() and not port_in_use(server.port)
    assert not list((tmp_path / "redis").glob("*.rdb"))  # nothing persisted
    again = redis.start(redis.RedisSettings(root=tmp_path / "redis"))
    try:
        assert again.password != first and not redis.ping(again.port, first)
    finally:
        redis.stop(again)


def test_protocol_and_log_reason(tmp_path: Path) -> None:
    assert redis._command("AUTH", "pw") == b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
    log = tmp_path / "redis.log"
    log.write_text(
        "1:M 01 Jan 2026 00:00:00.000 * Ready to accept connections\n"
        "1:M 01 Jan 2026 00:00:01.000 # User requested shutdown...\n"
        "1:M 01 Jan 2026 00:00:01.000 * Saving skipped\n"
    )
    assert redis.server_reason(log) == "User requested shutdown..."


def test_missing_redis_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="apt-get install redis-server"):
        redis.find_server()
