"""`mlopsbench doctor`: each check on real inputs it can meet (lock files, sockets, HF caches,
a tracking server), the exit code, and the CLI as a user runs it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mlopsbench.bench import doctor
from mlopsbench.bench.doctor import Check, DoctorConfig
from mlopsbench.cli import app

SHA = "0123456789abcdef0123456789abcdef01234567"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hub_repo(cache: Path, repo_type: str, repo_id: str, files: dict[str, str]) -> None:
    """A repository in the layout huggingface_hub writes: refs/main -> snapshots/<sha>/files."""
    root = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(SHA)
    for name, content in files.items():
        path = root / "snapshots" / SHA / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


# --- lock file and packages ------------------------------------------------------------------


def test_parse_lock_reads_pins_and_skips_the_rest() -> None:
    text = (
        "# comment\n"
        "--extra-index-url https://example.invalid/simple\n"
        "Torch==2.13.0 \\\n"
        "    --hash=sha256:abc\n"
        "scikit_learn==1.9.1 ; python_version >= '3.11'\n"
        "uvicorn[standard]==0.54.0  # server\n"
        "-e .\n"
        "numpy>=2\n"
    )
    assert doctor.parse_lock(text) == {
        "torch": "2.13.0",
        "scikit-learn": "1.9.1",
        "uvicorn": "0.54.0",
    }


def test_check_package_compares_with_the_lock() -> None:
    installed = metadata.version("rich")
    assert doctor.check_package("rich", {"rich": installed}, required=True).status == "ok"
    off = doctor.check_package("rich", {"rich": "0.0.1"}, required=True)
    assert off.status == "warn" and "0.0.1" in off.detail and "rich==0.0.1" in off.fix
    assert doctor.check_package("rich", None, required=True).detail == installed


def test_local_build_label_matches_the_pin() -> None:
    assert doctor._same_version("2.13.0+cpu", "2.13.0")
    assert not doctor._same_version("2.12.0+cpu", "2.13.0")


def test_missing_package_blocks_only_when_required() -> None:
    missing = "mlopsbench-no-such-package"
    assert doctor.check_package(missing, {}, required=True).status == "error"
    tool = doctor.check_package(missing, {}, required=False)
    assert tool.status == "warn" and "requirements.lock" in tool.fix


def test_package_group_sums_up_problems() -> None:
    pins = {"rich": "0.0.1", "typer": metadata.version("typer"), "nopkg-x": "1.0"}
    group = doctor.check_package_group("core packages", pins, pins, required=True)
    assert group.status == "error"  # a required package is missing
    assert "1 missing (nopkg-x)" in group.detail and "rich" in group.detail
    fine = doctor.check_package_group(
        "g", ["typer"], {"typer": metadata.version("typer")}, required=True
    )
    assert fine.status == "ok" and "match the lock file" in fine.detail


def test_find_lock_file_walks_up_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "requirements.lock").write_text("rich==1\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert doctor.find_lock_file(deep) == tmp_path / "requirements.lock"


def test_python_version() -> None:
    assert doctor.check_python((3, 11, 9)).status == "ok"
    old = doctor.check_python((3, 12, 1))
    assert old.status == "error" and "python3.11" in old.fix


# --- torch -----------------------------------------------------------------------------------


def test_bf16_native_or_emulated() -> None:
    assert "native" in doctor.describe_bf16({"avx2", "amx_bf16"}).detail
    assert "emulated" in doctor.describe_bf16({"avx2", "fma"}).detail
    assert "unknown" in doctor.describe_bf16(set()).detail


def test_torch_check_reports_the_device() -> None:
    import torch

    device, bf16 = doctor.check_torch()
    assert device.status == "ok" and bf16.name == "bf16 on CPU"
    assert ("CUDA" in device.detail) == torch.cuda.is_available()


def test_torch_check_names_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch, on a machine without a GPU: torch's answers stand in for one."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    device, _ = doctor.check_torch()
    assert device.detail == "CUDA 12.8: NVIDIA H100 (1 GPU): --device cuda"


# --- ports, data, programs, environment, output --------------------------------------------


def test_port_in_use_is_a_warning() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        busy = doctor.check_port("MLflow server", port)
        assert busy.status == "warn" and "--port" in busy.fix
    assert doctor.check_port("MLflow server", port).status == "ok"


def test_bundled_digits_are_there() -> None:
    assert doctor.check_bundled_digits().status == "ok"


def test_hf_cache_found_offline(tmp_path: Path) -> None:
    hub, built = tmp_path / "hub", tmp_path / "datasets"
    _hub_repo(hub, "dataset", "ylecun/mnist", {"mnist/train.parquet": "x"})
    _hub_repo(
        hub,
        "model",
        "distilbert-base-uncased-finetuned-sst-2-english",
        {"config.json": "{}", "model.safetensors": "w"},
    )
    (built / "stanfordnlp___imdb" / "plain_text").mkdir(parents=True)
    cfg = DoctorConfig(hf_cache=hub, datasets_cache=built, env={})
    mnist, imdb, model = doctor.check_hf_data(cfg)
    assert (mnist.status, imdb.status, model.status) == ("ok", "ok", "ok")
    assert "hub cache" in mnist.detail and "datasets cache" in imdb.detail
    assert "distilbert-base-uncased-finetuned-sst-2-english" in model.detail


def test_hf_cache_missing_says_what_to_do(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    _hub_repo(
        hub,
        "model",
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        {"config.json": "{}"},
    )
    cfg = DoctorConfig(hf_cache=hub, datasets_cache=tmp_path / "none", env={})
    mnist, imdb, model = doctor.check_hf_data(cfg)
    assert mnist.status == imdb.status == model.status == "warn"
    assert "--data sklearn" in mnist.fix and "--smoke" in imdb.fix
    assert "no weights" in model.detail and "--smoke" in model.fix
    empty = DoctorConfig(hf_cache=tmp_path / "no-cache", datasets_cache=tmp_path / "none", env={})
    assert [c.status for c in doctor.check_hf_data(empty)] == ["warn"] * 3


def test_chromium_on_path_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.check_chromium().status == "warn"
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    found = doctor.check_chromium()
    assert found.status == "ok" and str(browser) in found.detail


@pytest.fixture()
def health_server() -> Iterator[str]:
    """A local HTTP server that answers /health like MLflow's."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_tracking_uri(health_server: str) -> None:
    def check(uri: str | None) -> Check:
        env = {} if uri is None else {"MLFLOW_TRACKING_URI": uri}
        return doctor.check_tracking_uri(DoctorConfig(env=env, health_timeout_s=2.0))

    assert check(None).status == "ok"
    assert check("sqlite:///mlflow.db").status == "ok"
    assert check(health_server).status == "ok"
    down = check(f"http://user:secret@127.0.0.1:{_free_port()}")
    assert down.status == "warn" and "mlopsbench server mlflow" in down.fix
    assert "secret" not in down.detail and "***@127.0.0.1" in down.detail


def test_hf_offline_flag() -> None:
    assert doctor.check_hf_offline(DoctorConfig(env={"HF_HUB_OFFLINE": "1"})).status == "ok"
    unset = doctor.check_hf_offline(DoctorConfig(env={}))
    assert unset.status == "warn" and "HF_HUB_OFFLINE=1" in unset.fix


def test_runs_dir(tmp_path: Path) -> None:
    assert doctor.check_runs_dir(tmp_path).status == "ok"
    assert "will be created" in doctor.check_runs_dir(tmp_path / "new" / "runs").detail
    assert list(tmp_path.iterdir()) == []  # the probe left nothing behind
    a_file = tmp_path / "runs"
    a_file.write_text("")
    blocked = doctor.check_runs_dir(a_file)
    assert blocked.status == "error" and "--out" in blocked.fix


# --- all together ------------------------------------------------------------------------------


def test_exit_code_counts_errors_only() -> None:
    assert doctor.exit_code([Check("a", "ok", ""), Check("b", "warn", "", "fix")]) == 0
    assert doctor.exit_code([Check("a", "ok", ""), Check("b", "error", "", "fix")]) == 1


def test_render_marks_and_fixes() -> None:
    console = Console(record=True, width=120, color_system=None)
    checks = [
        Check("python", "ok", "3.11.7"),
        Check("port 5000", "warn", "in use", "start with --port N"),
        Check("runs/ writable", "error", "not a folder", "pass --out DIR"),
    ]
    doctor.render(checks, console)
    text = console.export_text()
    assert "✓" in text and "!" in text and "✗" in text
    assert "→ pass --out DIR" in text and "→ start with --port N" in text
    assert "1 problem(s) block" in text


def test_checks_import_no_tool() -> None:
    """Versions come from package metadata: no MLflow, Airflow, ... import (they cost seconds)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlopsbench.bench.doctor import DoctorConfig, run_checks\n"
        "run_checks(DoctorConfig(check_torch=False, runs_dir=Path(sys.argv[1]), ports=()))\n"
        "heavy = ('torch', 'mlflow', 'airflow', 'metaflow', 'kfp', 'transformers', 'datasets')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "runs"], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


# --- the CLI -----------------------------------------------------------------------------------


def _lock(tmp_path: Path) -> Path:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        f"torch=={metadata.version('torch')}\n"
        "rich==0.0.1\n"  # installed, but not the pinned version
        "mlopsbench-missing-pkg==1.0\n"
    )
    return lock


def test_cli_json_reports_and_exits_zero_on_warnings(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["doctor", "--json", "--lock", str(_lock(tmp_path)), "--out", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert checks["python"]["status"] == "ok"
    assert checks["torch"]["status"] == "ok" and "lock" in checks["torch"]["detail"]
    assert (
        checks["core packages"]["status"] == "warn" and "rich" in checks["core packages"]["detail"]
    )
    assert "mlopsbench-missing-pkg" in checks["other locked packages"]["detail"]
    assert {"port 5000", "port 8080", "digits (bundled)", "torch device", "bf16 on CPU"} <= set(
        checks
    )
    assert checks["HF_HUB_OFFLINE"]["status"] == "ok"  # tests/conftest.py sets it
    assert all(c["fix"] for c in report["checks"] if c["status"] != "ok")


def test_cli_table_and_exit_one_when_blocked(tmp_path: Path) -> None:
    blocked = tmp_path / "runs"
    blocked.write_text("not a folder")
    result = CliRunner().invoke(
        app, ["doctor", "--lock", str(_lock(tmp_path)), "--out", str(blocked)]
    )
    assert result.exit_code == 1, result.output
    assert "✗" in result.output and "mlopsbench doctor" in result.output
    assert "block `mlopsbench run digits`" in result.output
    assert "Traceback" not in result.output


def test_cli_missing_lock_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--lock", str(tmp_path / "nope.lock")])
    assert result.exit_code == 2
    assert "lock file not found" in result.output
    assert "Traceback" not in result.output
