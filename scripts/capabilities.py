"""Rebuild ``src/mlopsbench/toolkit/capabilities.json`` from the tests' capability markers.

    python scripts/capabilities.py          # write the catalogue
    python scripts/capabilities.py --check  # exit 1 when it is out of date

``tests/toolkit/test_capabilities.py`` runs the check, so a new marked test lands together with
its catalogue line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlopsbench.toolkit.capabilities import CATALOGUE_FILE, catalogue, scan_tests

REPO = Path(__file__).resolve().parents[1]


def render() -> str:
    return json.dumps(catalogue(scan_tests(REPO / "tests")), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = CATALOGUE_FILE.read_text("utf-8") if CATALOGUE_FILE.is_file() else ""
        if current != text:
            print(f"{CATALOGUE_FILE} is out of date: run python scripts/capabilities.py")
            return 1
        return 0
    CATALOGUE_FILE.write_text(text, "utf-8")
    print(f"wrote {CATALOGUE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
