"""Loopback ports and HTTP health probes."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from mlopsbench.errors import ConfigError, ServerError

LOCALHOST = "127.0.0.1"
LOOPBACK_HOSTS = (LOCALHOST, "localhost", "::1")


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def check_port(port: int, option: str = "--port") -> int:
    """A TCP port the OS can bind (1-65535), or a one-line ConfigError."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"{option} must be a TCP port between 1 and 65535, got {port}")
    return port


def check_free(port: int, option: str = "--port") -> None:
    check_port(port, option)
    if port_in_use(port):
        raise ServerError(f"port {port} on 127.0.0.1 is already in use; pick another with {option}")


def check_host(host: str) -> None:
    """Servers here bind loopback only; anything else must be an explicit, deliberate choice."""
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"refusing to bind {host!r}: mlopsbench servers listen on 127.0.0.1 only "
            "(put a reverse proxy in front to expose them)"
        )


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 within the timeout."""
    import requests

    with contextlib.suppress(requests.RequestException):
        return bool(requests.get(url, timeout=timeout_s).status_code == 200)
    return False


def wait_until(
    ready: Callable[[], bool],
    timeout_s: float,
    *,
    alive: Callable[[], bool] = lambda: True,
    poll_s: float = 0.25,
) -> bool:
    """Poll ``ready()`` until it is true (True), the timeout passes or ``alive()`` turns false
    (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        if ready():
            return True
        time.sleep(poll_s)
    return False


def check_health(
    base_url: str, path: str, what: str, timeout_s: float = 3.0, hint: str = ""
) -> None:
    """GET ``base_url + path``; a one-line ServerError when it is unreachable or not 200.

    ``what`` names the server in the message ("MLflow tracking server http://..."); ``hint``
    follows a wrong status. Redirects are not followed: a login page is not a healthy API.
    """
    import requests

    try:
        response = requests.get(base_url + path, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip().lower()
        raise ServerError(f"{what} is unreachable ({reason})") from None
    if response.status_code != 200:
        raise ServerError(
            f"{what} answered HTTP {response.status_code} on {path}" + (f": {hint}" if hint else "")
        )
