"""Aggregation and report rendering from a fixture results.jsonl (no tool is run here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlopsbench.bench.results import append_row, read_rows
from mlopsbench.cli import app
from mlopsbench.report.aggregate import run_split, summarize
from mlopsbench.report.build import build_document, build_report
from mlopsbench.report.document import Table
from mlopsbench.report.matrix import load_matrix
from mlopsbench.report.measured import instrumentation_score, measured_matrix
from mlopsbench.result import EVIDENCE_KEYS

ALL = dict.fromkeys(EVIDENCE_KEYS, True)


def _run(
    tool: str,
    repeat: int,
    wall: float,
    acc: float,
    *,
    status: str = "ok",
    evidence: dict[str, bool] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    timings = timings or {"data": 1.0, "train": 5.0, "evaluate": 2.0}
    return {
        "kind": "run",
        "id": f"{tool}-cnn-r{repeat}",
        "tool": tool,
        "usecase": "digits",
        "model": "cnn",
        "repeat": repeat,
        "config": {"model": "cnn", "epochs": 2, "seed": 42},
        "status": status,
        "error": None if status == "ok" else "quality gate failed",
        "result": {
            "tool": tool,
            "usecase": "digits",
            "model": "cnn",
            "metrics": {"accuracy": acc},
            "timings": timings,
            "status": status,
        },
        "evidence": evidence,
        "evidence_error": None if evidence else "no evidence(result)",
        "measure": {
            "wall_s": wall,
            "process_wall_s": wall + 0.1,
            "startup_s": 0.2,
            "import_s": 0.3,
            "evidence_s": 0.1,
            "teardown_s": 0.5,
            "peak_rss_mb": 600.0 + wall,
            "tree_peak_rss_mb": 700.0 + wall,
            "returncode": 0,
            "timed_out": False,
            "error": None,
        },
        "load_avg": [1.0, 1.2],
        "run_dir": f"/x/{tool}",
        "log": f"/x/{tool}/worker.log",
    }


def fixture_rows() -> list[dict[str, Any]]:
    meta = {
        "kind": "meta",
        "started_at": "2026-01-01T10:00:00+0000",
        "command": "mlopsbench compare",
        "usecase": "digits",
        "tools": ["plain", "mlflow", "metaflow", "airflow", "kfp"],
        "models": ["cnn"],
        "repeats": 2,
        "config": {"epochs": 2, "seed": 42},
        "threads": 1,
        "tolerance": 0.005,
        "environment": {
            "python": "3.11.7",
            "torch": "2.13.0+cpu",
            "mlflow": "3.17.2",
            "cpu": "Xeon",
            "cpu_count": 2,
            "gpu": "none",
        },
        "instrumentation": {
            "plain": {
                "tool": "plain",
                "files": ["tools/plain.py"],
                "missing": [],
                "loc": 70,
                "tool_lines": 0,
                "api_count": 0,
                "api": [],
            },
            "mlflow": {
                "tool": "mlflow",
                "files": ["tools/mlflow/runner.py"],
                "missing": [],
                "loc": 400,
                "tool_lines": 40,
                "api_count": 20,
                "api": ["mlflow.start_run"],
            },
            "airflow": {
                "tool": "airflow",
                "files": ["tools/airflow/dag.py"],
                "missing": [],
                "loc": 300,
                "tool_lines": 20,
                "api_count": 5,
                "api": ["airflow.sdk.dag"],
            },
        },
    }
    half = {**ALL, "lineage": False, "plots": False}
    return [
        meta,
        _run("plain", 1, 10.0, 0.9800),
        _run(
            "mlflow",
            1,
            20.0,
            0.9800,
            evidence=ALL,
            timings={"data": 1.0, "train": 5.0, "evaluate": 2.0, "tracking": 3.0, "import": 2.0},
        ),
        {
            **_run("metaflow", 1, 0.0, 0.0),
            "status": "failed",
            "error": "RuntimeError: boom",
            "result": None,
            "evidence": None,
            "measure": {"wall_s": 3.0, "returncode": 1},
        },
        _run("airflow", 1, 30.0, 0.9790, evidence=half),
        {
            "kind": "run",
            "id": "kfp-cnn-r1",
            "tool": "kfp",
            "usecase": "digits",
            "model": "cnn",
            "repeat": 1,
            "status": "missing",
            "error": "tool not available: needs kfp",
            "result": None,
            "evidence": None,
            "measure": None,
        },
        _run("plain", 2, 12.0, 0.9800),
        _run(
            "mlflow",
            2,
            22.0,
            0.9800,
            evidence=ALL,
            timings={"data": 1.0, "train": 5.0, "evaluate": 2.0, "tracking": 3.0, "import": 2.0},
        ),
        _run("airflow", 2, 31.0, 0.9700, status="gate_failed", evidence=ALL),
        {
            "kind": "install",
            "tool": "mlflow",
            "packages": ["mlflow==3"],
            "seconds": 30.0,
            "distributions": 100,
            "disk_mb": 300.0,
            "error": None,
        },
        {
            "kind": "install",
            "tool": "airflow",
            "packages": ["apache-airflow==3"],
            "seconds": 60.0,
            "distributions": 200,
            "disk_mb": 600.0,
            "error": None,
        },
        {"kind": "install", "tool": "kfp", "packages": ["kfp==2"], "error": "no registry"},
        {
            "kind": "server",
            "tool": "mlflow",
            "healthy_s": 14.2,
            "processes": 2,
            "peak_rss_mb": 300.0,
            "detail": "mlflow server, SQLite",
            "error": None,
        },
        {"kind": "server", "tool": "airflow", "healthy_s": None, "error": "port busy"},
        {"kind": "end", "finished_at": "2026-01-01T10:05:00+0000"},
    ]


# A valid 1x1 PNG: stands in for matplotlib where a test is about tables and text, not charts.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8ffff3f0005fe02fea7d6a4c50000000049454e44ae426082"
)


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlopsbench.report import charts

    for name in (
        "overhead_chart",
        "split_chart",
        "accuracy_chart",
        "heatmap_chart",
        "ranking_chart",
        "grouped_bar_chart",
        "rank_shift_chart",
    ):
        monkeypatch.setattr(charts, name, lambda *a, **k: TINY_PNG)


@pytest.fixture
def compare_dir(tmp_path: Path) -> Path:
    out = tmp_path / "cmp"
    out.mkdir()
    for row in fixture_rows():
        append_row(out / "results.jsonl", row)
    return out


def test_split_parts_sum_to_wall() -> None:
    # measure.import_s already holds the runner-reported "import" (the harness adds it when it
    # writes the row), so the split must not count timings["import"] a second time.
    row = _run(
        "mlflow", 1, 20.0, 0.98, timings={"data": 1.0, "train": 5.0, "evaluate": 2.0, "import": 2.0}
    )
    row["measure"]["import_s"] = 2.3
    parts = run_split(row)
    assert parts == pytest.approx(
        {"import": 2.5, "data": 1.0, "train": 5.0, "evaluate": 2.0, "tool": 9.5}
    )
    assert sum(parts.values()) == pytest.approx(20.0)


def test_summary_statistics() -> None:
    summary = summarize(fixture_rows())
    assert summary.finished and summary.tools[0] == "plain" and summary.models == ["cnn"]
    plain, mlflow = summary.stats[("plain", "cnn")], summary.stats[("mlflow", "cnn")]
    assert plain.wall.median == 11.0 and plain.wall.range == 2.0 and plain.completed == 2
    assert mlflow.wall.median == 21.0
    assert mlflow.overhead_s == pytest.approx(10.0)
    assert mlflow.overhead_pct == pytest.approx(100 * 10 / 11)
    assert mlflow.matches_plain is True and mlflow.repeatable is True and mlflow.acc_delta == 0.0
    assert mlflow.evidence_score == 7
    assert mlflow.bookkeeping == {"process exit": 0.5, "tracking": 3.0}
    # airflow: one run lacked lineage and plots; accuracy 0.979 / 0.970 -> median 0.9745.
    airflow = summary.stats[("airflow", "cnn")]
    assert airflow.completed == 2  # gate_failed still completed the pipeline
    assert airflow.evidence["lineage"] == 0.5 and airflow.evidence_score == 5
    assert airflow.matches_plain is False and airflow.repeatable is False
    failed = summary.stats[("metaflow", "cnn")]
    assert (
        failed.completed == 0
        and failed.wall.median is None
        and failed.errors == [("metaflow-cnn-r1", "RuntimeError: boom")]
    )
    assert summary.stats[("kfp", "cnn")].statuses == ["missing"]


def test_measured_scores_follow_their_formulas() -> None:
    summary = summarize(fixture_rows())
    matrix = load_matrix()
    table = measured_matrix(summary, matrix, matrix.weights)
    assert table["mlflow"]["instrumentation"].value == pytest.approx(10 - 40 / 40 - 20 / 10)
    assert table["airflow"]["instrumentation"].value == pytest.approx(10 - 20 / 40 - 5 / 10)
    assert table["mlflow"]["interpretability"].value == 10.0
    assert table["airflow"]["interpretability"].value == pytest.approx(round(10 * 5 / 7, 1))
    assert table["mlflow"]["performance"].value == pytest.approx(round(10 * 11 / 21, 1))
    # Installation: each doubling of disk or distributions over the lightest costs a point.
    assert table["mlflow"]["installation"].value == 10.0
    assert table["airflow"]["installation"].value == 8.0
    # Not measured -> the paper's score, marked; documentation is always the paper's.
    assert table["kfp"]["installation"].source == "paper (n/a)"
    assert table["kfp"]["installation"].value == 6.0
    assert table["mlflow"]["documentation"].source == "paper"
    assert table["metaflow"]["interpretability"].source == "paper (n/a)"
    assert table["plain"]["documentation"].value is None and table["plain"]["total"] is None
    assert instrumentation_score({}).source == "n/a"


def test_report_files_are_self_contained_and_agree(compare_dir: Path) -> None:
    paths = build_report(compare_dir)
    html = paths["html"].read_text()
    md = paths["markdown"].read_text()
    assert paths["results"] == compare_dir / "results.jsonl"
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing fetched from the web
    assert html.count("data:image/png;base64,") >= 6
    for needle in (
        "8.30",
        "8.25",
        "7.15",
        "7.05",
        "weighted average of 8.30",
        "RuntimeError: boom",
        "tool not available: needs kfp",
        "2.13.0+cpu",
        "Kubeflow Pipelines",
        "enterprise",
    ):
        assert needle in html and needle in md, needle
    # The same tables in both: every Markdown table header row has its HTML twin.
    doc = build_document_without_charts(read_rows(paths["results"]))
    tables = [b for s in doc.sections for b in s.blocks if isinstance(b, Table)]
    assert len(tables) >= 10
    for table in tables:
        assert "| " + " | ".join(h.replace("|", "\\|") for h in table.headers) + " |" in md
        assert all(f"<th>{h}" in html for h in table.headers if "&" not in h and "<" not in h)
    charts = sorted(p.name for p in (compare_dir / "charts").iterdir())
    assert {"overhead.png", "split.png", "accuracy.png", "paper_matrix.png", "ranking.png"} <= set(
        charts
    )
    assert "![wall time and overhead per tool](charts/overhead.png)" in md


@pytest.mark.usefixtures("no_charts")
def build_document_without_charts(rows: list[dict[str, Any]]) -> Any:
    """The document model again (its tables), with charts stubbed: they were checked above."""
    from mlopsbench.report import charts

    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "overhead_chart",
            "split_chart",
            "accuracy_chart",
            "heatmap_chart",
            "ranking_chart",
            "grouped_bar_chart",
            "rank_shift_chart",
        ):
            patch.setattr(charts, name, lambda *a, **k: TINY_PNG)
        return build_document(rows)


@pytest.mark.usefixtures("no_charts")
def test_interrupted_results_are_reported_as_partial(tmp_path: Path) -> None:
    out = tmp_path / "partial"
    out.mkdir()
    for row in fixture_rows()[:3]:  # meta, plain r1, mlflow r1: then Ctrl-C
        append_row(out / "results.jsonl", row)
    with (out / "results.jsonl").open("a") as fh:
        fh.write('{"kind": "run", "id": "torn')  # a line cut short by a crash
    paths = build_report(out)
    md = paths["markdown"].read_text()
    assert "INTERRUPTED" in md and "did not finish" in md
    assert "| mlflow | cnn | 1/1 |" in md


@pytest.mark.usefixtures("no_charts")
def test_report_command_rebuilds_and_reweights(compare_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(compare_dir)])
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output and "mlflow" in result.output
    first = (compare_dir / "report.md").read_text()
    assert "paper (selected)" in first

    result = runner.invoke(app, ["report", str(compare_dir), "--profile", "enterprise"])
    assert result.exit_code == 0, result.output
    assert "enterprise (selected)" in (compare_dir / "report.md").read_text()

    weights = compare_dir / "w.toml"
    weights.write_text(
        "[weights]\ninstallation = 50\nflexibility = 50\ninteroperability = 10\n"
        "instrumentation = 0\ninterpretability = 0\ndocumentation = 0\n"
    )
    result = runner.invoke(app, ["report", str(compare_dir), "--weights", str(weights)])
    assert result.exit_code == 2
    assert "weights must sum to 100" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_report_command_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "no results.jsonl" in result.output
    (tmp_path / "results.jsonl").write_text("not json\n")
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "holds no result rows" in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("no_charts")
def test_recorded_custom_weights_survive_a_rebuild(tmp_path: Path) -> None:
    rows = fixture_rows()
    rows[0]["selected_profile"] = {
        "name": "ops",
        "title": "ops",
        "basis": "mine",
        "weights": {
            "installation": "0",
            "flexibility": "0",
            "interoperability": "100",
            "instrumentation": "0",
            "interpretability": "0",
            "documentation": "0",
        },
    }
    out = tmp_path / "c"
    out.mkdir()
    for row in rows:
        append_row(out / "results.jsonl", row)
    md = build_report(out)["markdown"].read_text()
    assert "ops (selected)" in md
    assert "| ops | #1 Airflow 9.00 |" in md


def test_results_lines_are_compact_json(compare_dir: Path) -> None:
    lines = (compare_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(fixture_rows())
    assert all(json.loads(line)["kind"] for line in lines)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(compare_dir: Path) -> None:
    """scripts/report_screenshot.py: the page renders offline into a non-blank screenshot."""
    import importlib.util
    import shutil
    import struct

    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium on this machine (apt-get install -y chromium)")
    script = Path(__file__).resolve().parents[2] / "scripts" / "report_screenshot.py"
    spec = importlib.util.spec_from_file_location("report_screenshot", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build_report(compare_dir)
    shot = module.screenshot(compare_dir / "index.html", compare_dir / "shot.png", "1200,1600", 180)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    assert len(data) > 50_000  # tables and charts, not a blank page


def _latency_run(tool: str, repeat: int, executor: str, total: float, hosts: int) -> dict[str, Any]:
    row = _run(tool, repeat, 30.0 + total, 0.9, evidence=ALL)
    queued = executor != "dag.test()"
    row["result"]["tool_info"] = {
        "executor": executor,
        "task_overhead_median_s": total,
        "latency_median_s": {
            "scheduling": total / 2 if queued else None,
            "queueing": 0.05 if queued else None,
            "in_task": total / 4,
        },
        "hosts": {f"task{i}": f"worker-{i % hosts}" for i in range(5)},
        "trigger_to_finish_s": 20.0 if queued else None,
        "deployment_ready_s": 15.0 if queued else None,
    }
    return row


@pytest.mark.usefixtures("no_charts")
def test_executors_side_by_side_show_their_per_task_overhead() -> None:
    """``compare --tools airflow,airflow@local,airflow@celery``: one row per way to run, with
    the per-task scheduling and queueing medians each run recorded."""
    rows = [row for row in fixture_rows() if row.get("kind") == "meta"]
    for repeat in range(3):
        rows += [
            _latency_run("airflow", repeat, "dag.test()", 0.2 + repeat / 100, 1),
            _latency_run("airflow@local", repeat, "LocalExecutor", 1.0 + repeat / 100, 1),
            _latency_run("airflow@celery", repeat, "CeleryExecutor", 1.3 + repeat / 100, 2),
        ]
    doc = build_document_without_charts(rows)
    section = next(s for s in doc.sections if s.anchor == "task-latency")
    table = next(b for b in section.blocks if isinstance(b, Table))
    by_tool = {row[0]: row for row in table.rows}
    assert set(by_tool) == {"airflow", "airflow@local", "airflow@celery"}
    assert by_tool["airflow"][2:5] == ("dag.test()", "3", "0.21")
    assert by_tool["airflow"][5:7] == ("–", "–")  # dag.test() hands nothing to an executor
    assert by_tool["airflow@local"][4:7] == ("1.01", "0.51", "0.05")
    assert by_tool["airflow@celery"][2] == "CeleryExecutor"
    assert by_tool["airflow@celery"][8] == "2"  # the tasks ran on two workers
    matrix = load_matrix()
    measured = measured_matrix(summarize(rows), matrix, matrix.weights)
    assert set(measured) >= {"airflow", "airflow@local", "airflow@celery"}


@pytest.mark.usefixtures("no_charts")
def test_no_per_task_section_without_per_task_records() -> None:
    doc = build_document_without_charts(fixture_rows())
    assert all(section.anchor != "task-latency" for section in doc.sections)
