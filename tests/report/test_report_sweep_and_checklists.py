"""The report's sweep section, the exercised flexibility/interoperability grids (with the test
behind each ✓), the documentation evidence and how the ranking moves (no tool run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_report_build import build_document_without_charts, fixture_rows

from mlopsbench.report.aggregate import summarize
from mlopsbench.report.document import Bullets, Table, to_markdown
from mlopsbench.report.matrix import load_matrix
from mlopsbench.report.measured import measured_matrix

CATALOGUE = {
    "airflow": {
        "fan_out_in": ["tests/tools/airflow/test_sweep.py::test_mapped"],
        "dynamic_task_count": ["tests/tools/airflow/test_sweep.py::test_mapped"],
        "retries_backoff": ["tests/tools/airflow/test_celery.py::test_retry"],
        "postgres_store": ["tests/tools/airflow/test_celery.py::test_pg"],
    },
    "mlflow": {"mlflow_tracking": ["tests/tools/mlflow/test_a.py::test_b"]},
    "*": {"ci_workflow": ["tests/ci/test_workflow.py::test_tool_job"]},
}


def _sweep_run(tool: str, workers: int, wall: float, best: str, stored: int | None) -> dict:
    trials = [{"name": best, "accuracy": 0.95}, {"name": "trial-09", "accuracy": 0.9}]
    sweep = {
        "planned": 8,
        "finished": 8,
        "workers": workers,
        "best": trials[0],
        "trials": trials,
        "stored_trials": stored,
        "queryable": stored == 8,
    }
    return {
        "kind": "run",
        "id": f"{tool}-8x-w{workers}-r1",
        "tool": tool,
        "usecase": "sweep",
        "model": f"8x-w{workers}",
        "repeat": 1,
        "config": {"workers": workers},
        "status": "ok",
        "result": {
            "tool": tool,
            "usecase": "sweep",
            "model": f"8x-w{workers}",
            "metrics": {"accuracy": 0.95},
            "timings": {"data": 1.0, "trials": 6.0, "evaluate": 1.0},
            "tool_info": {"sweep": sweep},
            "status": "ok",
        },
        "evidence": None,
        "measure": {"wall_s": wall, "startup_s": 0.1, "import_s": 0.1, "peak_rss_mb": 500.0},
        "deprecations": [
            {"category": "DeprecationWarning", "message": f"{tool} old API", "package": tool}
        ]
        if tool == "airflow"
        else [],
    }


def sweep_rows() -> list[dict[str, Any]]:
    meta = {
        "kind": "meta",
        "usecase": "sweep",
        "tools": ["plain", "airflow", "mlflow"],
        "repeats": 1,
        "config": {},
        "capabilities": CATALOGUE,
    }
    runs = [
        _sweep_run("plain", 1, 10.0, "trial-00", 8),
        _sweep_run("plain", 2, 6.0, "trial-00", 8),
        _sweep_run("airflow", 1, 18.0, "trial-00", 8),
        _sweep_run("airflow", 2, 10.0, "trial-00", 8),
        _sweep_run("mlflow", 1, 14.0, "trial-03", 5),
        _sweep_run("mlflow", 2, 12.0, "trial-03", 5),
    ]
    return [meta, *runs, {"kind": "end"}]


def _section(doc: Any, anchor: str) -> Any:
    return next(s for s in doc.sections if s.anchor == anchor)


def _table(section: Any, index: int = 0) -> Table:
    return [b for b in section.blocks if isinstance(b, Table)][index]


def test_sweep_section_times_overhead_store_and_best() -> None:
    doc = build_document_without_charts(sweep_rows())
    table = _table(_section(doc, "sweep"))
    rows = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.rows}
    assert rows["airflow"]["wall, 1 worker"] == "18.0 s"
    assert rows["airflow"]["wall, 2 workers"] == "10.0 s"
    assert rows["airflow"]["speed-up 1→2"] == "1.80×"
    assert rows["airflow"]["overhead/trial, 1w"] == "+1.00 s"  # (18 - 10) / 8
    assert rows["airflow"]["overhead/trial, 2w"] == "+0.50 s"  # (10 - 6) / 8
    assert rows["airflow"]["in the store"] == "✓ 8/8"
    assert rows["airflow"]["same best as plain"] == "✓"
    assert rows["mlflow"]["in the store"] == "✗ 5/8"
    assert rows["mlflow"]["same best as plain"] == "✗"
    assert rows["plain"]["overhead/trial, 1w"] == "baseline"


def test_no_sweep_section_for_the_papers_use_cases() -> None:
    doc = build_document_without_charts(fixture_rows())
    assert all(s.anchor != "sweep" for s in doc.sections)


def test_checklist_grids_score_what_tests_exercise_and_name_them() -> None:
    doc = build_document_without_charts(sweep_rows())
    flexibility = _table(_section(doc, "checklists"), 0)
    rows = {row[0]: dict(zip(flexibility.headers, row, strict=True)) for row in flexibility.rows}
    assert "plain" not in rows  # the baseline has no tool to exercise
    assert rows["airflow"]["Fan-out / fan-in"] == "✓"
    assert rows["airflow"]["Schedule"] == "✗"
    assert rows["airflow"]["measured"] == "3/8 → 3.8"
    assert rows["airflow"]["paper"] == "9"  # Table 2
    interop = _table(_section(doc, "checklists"), 1)
    rows = {row[0]: dict(zip(interop.headers, row, strict=True)) for row in interop.rows}
    assert rows["mlflow"]["measured"] == "2/6 → 3.3"  # its own item + the CI job every tool has
    appendix = next(b for b in _section(doc, "checklist-tests").blocks if isinstance(b, Bullets))
    assert (
        "**airflow** · Retries with back-off: `tests/tools/airflow/test_celery.py::test_retry`"
        in (appendix.items)
    )


def test_measured_flexibility_and_interoperability_replace_the_papers() -> None:
    summary = summarize(sweep_rows())
    matrix = load_matrix()
    table = measured_matrix(summary, matrix, matrix.weights)
    assert table["airflow"]["flexibility"].source == "measured"
    assert table["airflow"]["flexibility"].value == pytest.approx(3.8)
    assert table["airflow"]["interoperability"].value == pytest.approx(round(10 * 2 / 6, 1))
    assert table["airflow"]["documentation"].source == "paper"
    assert table["plain"]["flexibility"].value is None


def test_documentation_evidence_lists_deprecations_and_the_papers_api_breaks() -> None:
    doc = build_document_without_charts(sweep_rows())
    section = _section(doc, "documentation")
    seen = {row[0]: row for row in _table(section, 0).rows}
    assert seen["airflow"][1:] == ("1", "airflow old API")
    assert seen["mlflow"][1] == "0"
    changes = _table(section, 1)
    assert any("schedule_interval" in row[1] for row in changes.rows)
    for row in changes.rows:  # every entry says how it was found, and that source exists
        source = row[-1].split("::")[0].split(" ")[0]
        assert (Path(__file__).resolve().parents[2] / source).is_file(), row


def test_the_ranking_moves_table_compares_paper_and_measured_ranks() -> None:
    doc = build_document_without_charts(sweep_rows())
    measured = _section(doc, "measured")
    moves = next(
        b for b in measured.blocks if isinstance(b, Table) and "paper ranking" in b.headers
    )
    profiles = [row[0] for row in moves.rows]
    assert "paper" in profiles
    assert all(">" in row[1] and ">" in row[2] for row in moves.rows)
    text = to_markdown(doc, None)
    assert "How the ranking moves" in text


def test_installation_counts_the_services_a_ui_needs() -> None:
    rows = fixture_rows()
    rows[0]["tools_declared"] = {
        "mlflow": {"services": ["mlflow server", "backend store"]},
        "airflow": {"services": ["api-server", "scheduler", "dag-processor", "db", "workers"]},
    }
    matrix = load_matrix()
    table = measured_matrix(summarize(rows), matrix, matrix.weights)
    # mlflow: the lightest (log terms 0) minus 2 services x 0.25
    assert table["mlflow"]["installation"].value == pytest.approx(9.5)
    # airflow: twice the disk and the distributions (-2) and 5 services (-1.25)
    assert table["airflow"]["installation"].value == pytest.approx(round(10 - 2 - 1.25, 1))
    assert "5 UI services" in table["airflow"]["installation"].detail
