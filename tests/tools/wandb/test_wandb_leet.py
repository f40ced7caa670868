"""W&B's terminal UI, LEET, shows an offline run as a person would see it: no server, no
account. ``wandb leet <run folder>`` runs in a tmux pane; the test reads the screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mlopsbench.result import RunResult
from mlopsbench.tools.wandb import adapter, readback

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux drives the terminal UI"),
]


def _screen(session: str) -> str:
    done = subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def test_leet_shows_the_offline_run(passed_run: RunResult, tmp_path: Path) -> None:
    folder = passed_run.tool_info["run_folder"]
    env = {**adapter.wandb_env(tmp_path), **readback.READER_ENV}
    command = " ".join(
        [*(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "wandb", "leet", folder]
    )
    session = f"mlopsbench-leet-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", f"env {command}"],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        screen, deadline = "", time.monotonic() + 30
        while time.monotonic() < deadline and "State: Finished" not in screen:
            time.sleep(0.5)
            screen = _screen(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "State: Finished" in screen, screen
    assert f"ID: {passed_run.tool_info['run_id']}" in screen
    assert "Project: mlopsbench-digits" in screen and "gate-passed" in screen
    assert "train_loss" in screen and "accuracy" in screen
