"""Render a compare report's index.html in headless Chromium and save a PNG screenshot.

Usage: python scripts/report_screenshot.py RUN_DIR_OR_INDEX_HTML [--out shot.png]
       [--size 1400,2400] [--timeout 120]

Chromium runs offline and sandboxed from the user's profile (a throw-away --user-data-dir), with
background networking and component updates off: the report must render with nothing fetched.
Install it with ``apt-get install -y chromium`` when missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from mlopsbench.report.chromium import find_chromium, headless_command


def screenshot(html: Path, out: Path, size: str = "1400,2400", timeout_s: float = 120.0) -> Path:
    """Write ``out`` (PNG) from ``html``; raise SystemExit with one line on failure."""
    if not html.is_file():
        raise SystemExit(f"error: no report at {html}")
    browser = find_chromium()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlopsbench-chromium-") as profile:
        args = [
            *headless_command(browser, profile, size),
            "--hide-scrollbars",
            f"--screenshot={out.resolve()}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(f"error: Chromium did not finish within {timeout_s:.0f} s") from None
    if not out.is_file() or out.stat().st_size == 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: Chromium wrote no screenshot (exit {done.returncode}): {last}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="compare folder or its index.html")
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG path (default: <folder>/report.png)"
    )
    parser.add_argument("--size", default="1400,2400", help="window size WIDTH,HEIGHT")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    html = args.report / "index.html" if args.report.is_dir() else args.report
    out = args.out or html.with_name("report.png")
    print(screenshot(html, out, args.size, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
