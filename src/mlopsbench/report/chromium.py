"""Headless Chromium for the screenshot scripts: one way to find it, one set of flags.

The flags matter on these machines: without the background-networking ones Chromium keeps
trying to reach hosts this closed network refuses, and as root it needs ``--no-sandbox``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    """Path of a Chromium binary, or SystemExit with the one line that says how to get one."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("error: no Chromium found; install it with: apt-get install -y chromium")


def headless_command(binary: str, profile: Path | str, window_size: str) -> list[str]:
    """The command line up to (not including) the action flag and the URL."""
    return [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={window_size}",
    ]
