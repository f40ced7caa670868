"""The harness: planning, the worker, measuring a child process, failures and Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from mlopsbench.bench import compare as cmp
from mlopsbench.bench.configs import absolutize_paths, apply_overrides, base_config, field_types
from mlopsbench.bench.results import append_row, iter_rows, read_rows
from mlopsbench.bench.spawn import run_child
from mlopsbench.bench.worker import run_request
from mlopsbench.errors import ConfigError, DataError
from mlopsbench.result import EVIDENCE_KEYS


def _cfg(out: Path, **changes: Any) -> cmp.CompareConfig:
    values = {
        "usecase": "digits",
        "tools": ("mlflow", "plain", "kfp"),
        "models": ("simple", "cnn"),
        "repeats": 2,
        "config": base_config("digits", epochs=1),
        "out_dir": out,
    }
    values.update(changes)
    return cmp.CompareConfig(**values)


def test_plan_interleaves_repeats_and_puts_plain_first(tmp_path: Path) -> None:
    specs = cmp.plan_runs(_cfg(tmp_path))
    assert [s.run_id for s in specs[:3]] == ["plain-simple-r1", "mlflow-simple-r1", "kfp-simple-r1"]
    assert [s.repeat for s in specs] == [1] * 6 + [2] * 6
    assert {s.config["model"] for s in specs} == {"simple", "cnn"}
    assert all(s.config["epochs"] == 1 and s.config["seed"] == 42 for s in specs)


def test_compare_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="repeats"):
        _cfg(tmp_path, repeats=0)
    with pytest.raises(ConfigError, match="no tools"):
        _cfg(tmp_path, tools=())


def test_config_overrides_are_typed() -> None:
    values = base_config("digits", epochs=3)
    assert values["epochs"] == 3
    changed = apply_overrides(
        values,
        ["lr=0.01", "epochs=4", "data_limit_train=100", "precision=bf16"],
        field_types("digits"),
    )
    assert changed["lr"] == 0.01 and changed["epochs"] == 4 and changed["data_limit_train"] == 100
    assert changed["precision"] == "bf16"
    with pytest.raises(ConfigError, match="unknown config key 'speed'"):
        apply_overrides(values, ["speed=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(values, ["epochs"])
    with pytest.raises(ConfigError, match="--set epochs"):
        apply_overrides(values, ["epochs=many"])
    with pytest.raises(ConfigError, match="unknown DigitsConfig settings: speed"):
        base_config("digits", speed=1)
    assert absolutize_paths({"data_path": "rel/x.npz"})["data_path"].startswith("/")


def test_sentiment_smoke_config_follows_the_smoke_defaults() -> None:
    from mlopsbench.bench.configs import build_config

    values = base_config("sentiment", smoke=True, sample_size=20)
    cfg = build_config("sentiment", values)
    assert cfg.smoke and cfg.data_source == "fixture" and cfg.sample_size == 20
    assert build_config("sentiment", base_config("sentiment")).data_source == "hf"
    changed = apply_overrides(values, ["fine_tune_epochs=3"], field_types("sentiment"))
    assert changed["fine_tune_epochs"] == 3


def test_child_env_fixes_threads_and_isolates_homes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid")
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    env = cmp.child_env(_cfg(tmp_path, threads=1), tmp_path / "run", tmp_path / "tmp")
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["AIRFLOW_HOME"] == str(tmp_path / "run" / "airflow-home")
    assert "MLFLOW_TRACKING_URI" not in env and env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert "OMP_NUM_THREADS" not in cmp.child_env(_cfg(tmp_path, threads=0), tmp_path, tmp_path)


def test_new_compare_dir_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        cmp.new_compare_dir(tmp_path / "used")
    assert cmp.new_compare_dir(tmp_path / "fresh").is_dir()


def test_results_file_appends_whole_lines_and_skips_torn_ones(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_row(path, {"kind": "meta", "n": 1})
    append_row(path, {"kind": "run", "path": Path("/x")})
    with path.open("a") as fh:
        fh.write('{"kind": "run", "cut')
    rows = list(iter_rows(path))
    assert rows == [{"kind": "meta", "n": 1}, {"kind": "run", "path": "/x"}]
    with pytest.raises(DataError, match="no results file"):
        read_rows(tmp_path / "none.jsonl")


def test_run_child_measures_memory_and_time(tmp_path: Path) -> None:
    # timeit runs the statement once in a fresh interpreter: ~200 MB touched, then exit 0.
    outcome = run_child(
        ["timeit", "-n", "1", "-r", "1", "b = bytearray(200 * 1024 * 1024)"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "log",
    )
    assert outcome.returncode == 0 and not outcome.timed_out
    assert outcome.peak_rss_mb > 200
    assert outcome.tree_peak_rss_mb >= outcome.peak_rss_mb
    assert 0 < outcome.wall_s < 60
    assert "loop" in (tmp_path / "log").read_text()


def test_run_child_timeout_stops_the_process_group(tmp_path: Path) -> None:
    polls: list[float] = []
    outcome = run_child(
        ["timeit", "-n", "1", "-r", "1", "import time; time.sleep(60)"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "log",
        timeout_s=1.0,
        on_poll=polls.append,
    )
    assert outcome.timed_out and outcome.returncode != 0
    assert outcome.wall_s < 30 and polls


def test_worker_records_a_failure_as_a_result(tmp_path: Path) -> None:
    payload, code = run_request(
        {
            "tool": "plain",
            "usecase": "digits",
            "out_dir": str(tmp_path),
            "config": {**base_config("digits"), "epochs": 0},
            "spawned_at": 0.0,
        }
    )
    assert code == 1 and payload["status"] == "failed"
    assert payload["error"] == "epochs must be >= 1, got 0"
    assert payload["evidence"] is None and "startup_s" in payload["worker"]


def test_missing_tool_becomes_a_failure_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlopsbench.toolkit import envs

    monkeypatch.setenv(envs.ENVS_ENV, str(tmp_path / "no-environments-here"))
    cfg = _cfg(tmp_path, tools=("kfp",), models=("simple",), repeats=1)
    row = cmp.run_row(cmp.plan_runs(cfg)[0], cfg, tmp_path)
    assert row["status"] == "missing" and row["measure"] is None
    assert row["error"].startswith("tool not available")
    assert not (tmp_path / "runs").exists()  # nothing was started


def _fake_row(spec: cmp.RunSpec, cfg: cmp.CompareConfig, *_args: Any) -> dict[str, Any]:
    return {
        "kind": "run",
        "id": spec.run_id,
        "tool": spec.tool,
        "usecase": cfg.usecase,
        "model": spec.model,
        "repeat": spec.repeat,
        "status": "ok",
        "error": None,
        "result": {
            "metrics": {"accuracy": 0.9},
            "timings": {"data": 1.0, "train": 2.0, "evaluate": 1.0},
        },
        "evidence": dict.fromkeys(EVIDENCE_KEYS, True),
        "measure": {
            "wall_s": 5.0,
            "startup_s": 0.1,
            "import_s": 0.2,
            "peak_rss_mb": 300.0,
            "tree_peak_rss_mb": 300.0,
        },
    }


def test_ctrl_c_keeps_finished_runs_and_writes_a_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake(spec: cmp.RunSpec, cfg: cmp.CompareConfig, *args: Any) -> dict[str, Any]:
        calls.append(spec.run_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _fake_row(spec, cfg)

    monkeypatch.setattr(cmp, "run_row", fake)
    from mlopsbench.report import charts  # tables and files are the point here, not matplotlib

    png = b"\x89PNG\r\n\x1a\n"
    for name in (
        "overhead_chart",
        "split_chart",
        "accuracy_chart",
        "heatmap_chart",
        "ranking_chart",
    ):
        monkeypatch.setattr(charts, name, lambda *a, **k: png)
    from mlopsbench.report.build import build_report

    out = cmp.new_compare_dir(tmp_path / "cmp")
    profile = {"selected_profile": {"name": "paper"}}
    cfg = dataclasses.replace(_cfg(out, models=("simple",), repeats=1), meta=profile)
    outcome = cmp.run_compare(cfg, show_progress=False)
    assert outcome.interrupted
    rows = read_rows(out / "results.jsonl")
    assert [r["kind"] for r in rows] == ["meta", "run", "run"]  # no "end": interrupted
    assert rows[0]["instrumentation"]["plain"]["loc"] > 0
    assert rows[0]["selected_profile"]["name"] == "paper"
    build_report(out)  # what the CLI does next, interrupted or not
    assert "INTERRUPTED" in (out / "report.md").read_text()
    assert (out / "index.html").exists() and not (out / ".tmp").exists()


def test_compare_cli_validates_before_running(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    runner = CliRunner()
    for args, message in (
        (["compare", "--tools", "plain,nope"], "unknown tool 'nope'"),
        (["compare", "--models", "resnet"], "unknown model 'resnet'"),
        (["compare", "--profile", "fastest"], "unknown profile 'fastest'"),
        (["compare", "imagenet"], "unknown use case 'imagenet'"),
        (["compare", "--set", "lr=-1"], "lr must be > 0"),
    ):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "never")])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "never").exists()


def test_compare_plain_end_to_end(tmp_path: Path) -> None:
    """The real thing on the baseline: worker subprocess, measurements, evidence, report."""
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app,
        ["compare", "--tools", "plain", "--epochs", "1", "--models", "simple", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "results.jsonl")
    # plain runs in the core environment: the only install row is the shared core's
    assert [r["kind"] for r in rows] == ["meta", "run", "install", "end"]
    assert rows[2]["tool"] == "core (shared)" and rows[2]["disk_mb"] > 100
    run = rows[1]
    assert run["status"] in ("ok", "gate_failed"), run["error"]
    assert 0.5 < run["result"]["metrics"]["accuracy"] <= 1.0
    assert run["result"]["params"]["epochs"] == 1 and run["result"]["params"]["seed"] == 42
    measure = run["measure"]
    assert measure["wall_s"] >= measure["run_s"] > 0
    assert measure["peak_rss_mb"] > 100  # torch is in there
    assert set(run["result"]["timings"]) >= {"data", "train", "evaluate"}
    assert Path(run["run_dir"], "out", "model", "model.safetensors").exists()
    request = json.loads(Path(run["run_dir"], "request.json").read_text())
    assert request["tool"] == "plain" and request["config"]["model"] == "simple"
    html = (out / "index.html").read_text()
    assert "plain" in html and "8.30" in html
    assert "index.html" in result.output and "report.md" in result.output
    assert sys.executable  # the worker ran under this interpreter


@pytest.mark.slow
def test_compare_sentiment_smoke_on_plain(tmp_path: Path) -> None:
    """The offline sentiment path through the CLI: tiny DistilBERT, bundled reviews."""
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    out = tmp_path / "sent"
    args = ["compare", "sentiment", "--smoke", "--tools", "plain", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--set", "fine_tune_epochs=4"])
    assert result.exit_code == 0, result.output
    run = next(r for r in read_rows(out / "results.jsonl") if r["kind"] == "run")
    assert run["status"] in ("ok", "gate_failed"), run["error"]
    assert run["model"] == "tiny-distilbert" and run["result"]["params"]["smoke"] is True
    assert {"data", "model", "evaluate"} <= set(run["result"]["timings"])
    assert 0.0 <= run["result"]["metrics"]["accuracy"] <= 1.0
    assert "sentiment" in (out / "report.md").read_text()


TOOLS = ("mlflow", "metaflow", "airflow", "kfp")


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_runs_under_the_harness(tool: str, tmp_path: Path) -> None:
    """Each tool's real pipeline in a worker: same config, evidence read from its own store.

    One run row per tool (the report around it is covered above, on plain and on fixtures).
    """
    config = base_config("digits", epochs=1, model="simple")
    config["data_limit_train"] = 600  # a smaller training set: the tool's cost is what we test
    cfg = cmp.CompareConfig(
        usecase="digits",
        tools=(tool,),
        models=("simple",),
        repeats=1,
        config=config,
        out_dir=tmp_path,
        timeout_s=420,
    )
    (tmp_path / "tmp").mkdir()
    run = cmp.run_row(cmp.plan_runs(cfg)[0], cfg, tmp_path / "tmp")
    assert run["status"] in ("ok", "gate_failed"), f"{run['error']} (log: {run.get('log')})"
    assert run["result"]["tool"] == tool
    params = run["result"]["params"]
    assert (
        params["epochs"] == 1 and params["model"] == "simple" and params["data_limit_train"] == 600
    )
    assert 0.3 < run["result"]["metrics"]["accuracy"] <= 1.0
    # The core stages are timed inside the tool's steps, and the tool's own cost is visible.
    timings = run["result"]["timings"]
    assert {"data", "train", "evaluate"} <= set(timings)
    assert run["measure"]["wall_s"] > sum(timings[k] for k in ("data", "train", "evaluate"))
    assert run["measure"]["cpu_s"] > 1.0 and run["measure"]["peak_rss_mb"] > 100
    # What the tool's own store holds, read back by its runner's evidence(result).
    evidence = run["evidence"]
    assert set(evidence) == set(EVIDENCE_KEYS), run.get("evidence_error")
    for key in ("params", "final_metrics", "model_artifact", "run_state"):
        assert evidence[key], (key, run.get("evidence_error"))


OTHER_MLFLOW = "3.16.0"  # the oldest 3.x that accepts the core's pandas 3 (3.15 pins pandas<3)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_versions_of_a_tool_are_two_rows_from_two_environments(tmp_path: Path) -> None:
    """``--tools mlflow,mlflow==X``: the locked MLflow and another version, each in its own
    environment (the second built on first use), give two rows on the same work."""
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    other = f"mlflow=={OTHER_MLFLOW}"
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "--tools",
            f"mlflow,{other}",
            "--models",
            "simple",
            "--epochs",
            "1",
            "--set",
            "threshold=0",
            "--set",
            "data_limit_train=600",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "results.jsonl")
    runs = {r["tool"]: r for r in rows if r["kind"] == "run"}
    assert set(runs) == {"mlflow", other}
    versions = {t: r["result"]["environment"]["mlflow"] for t, r in runs.items()}
    assert versions[other] == OTHER_MLFLOW and versions["mlflow"] != OTHER_MLFLOW
    accuracies = {r["result"]["metrics"]["accuracy"] for r in runs.values()}
    assert len(accuracies) == 1  # the same core, config and seed: the same model
    assert all(all(r["evidence"].values()) for r in runs.values()), {
        t: r["evidence"] for t, r in runs.items()
    }
    installs = {r["tool"]: r for r in rows if r["kind"] == "install"}
    assert {"core (shared)", "mlflow", other} <= set(installs)
    assert installs[other]["distributions"] > 10
    assert "mlflow-3.16.0-simple-r1" in {r["id"] for r in runs.values()}
    assert other in (out / "report.md").read_text()


def test_compare_sweep_on_plain_has_a_row_per_parallelism(tmp_path: Path) -> None:
    """``compare sweep``: one row per --workers value, the sweep section in the report."""
    from typer.testing import CliRunner

    from mlopsbench.cli import app

    out = tmp_path / "cmp"
    args = ["compare", "sweep", "--tools", "plain", "--workers", "1,2", "--epochs", "1"]
    sweep = ["--set", "trials=2", "--set", "models=simple", "--set", "threshold=0.5"]
    result = CliRunner().invoke(app, [*args, *sweep, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [r for r in read_rows(out / "results.jsonl") if r["kind"] == "run"]
    assert [r["model"] for r in rows] == ["2x-w1", "2x-w2"]
    assert [r["result"]["tool_info"]["sweep"]["workers"] for r in rows] == [1, 2]
    bests = {r["result"]["tool_info"]["sweep"]["best"]["name"] for r in rows}
    assert len(bests) == 1  # the same best trial at any parallelism
    meta = read_rows(out / "results.jsonl")[0]
    assert "capabilities" in meta  # the grids are of the code that ran
    assert "Sweep: trials fanned out by each tool" in (out / "report.md").read_text()
