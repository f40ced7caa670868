"""Fixtures of the service tests: a folder PostgreSQL's unprivileged user can enter."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def service_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path`` when we are not root; as root, a fresh folder under /tmp that the
    ``postgres`` user can enter (pytest's own temporary folders are 0700, root's only)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mlopsbench-svc-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
