"""Report charts from degenerate results: a PNG (or None where the chart has no rows), quietly.

Rows come from results.jsonl: one tool only, every run failed, identical or zero values,
NaN/inf (a diverged model, a clock glitch) and missing values must not raise or warn
(matplotlib's "identical xlims" warning, NaN axis limits, a Decimal NaN in a sort).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from mlopsbench.report import charts
from mlopsbench.report.aggregate import SPLIT_PARTS, Spread, ToolStats

PNG = b"\x89PNG\r\n\x1a\n"
NAN, INF = float("nan"), float("inf")


def stats(
    tool: str,
    wall: tuple[float, ...] = (),
    accuracy: tuple[float, ...] = (),
    cpu: tuple[float, ...] = (),
    split: dict[str, Spread] | None = None,
    overhead: float | None = None,
) -> ToolStats:
    s = ToolStats(tool=tool, model="cnn")
    s.wall, s.accuracy, s.cpu = Spread(wall), Spread(accuracy), Spread(cpu)
    s.split = {p: Spread(wall) for p in SPLIT_PARTS} if split is None else split
    s.overhead_s = overhead
    s.overhead_pct = None if overhead is None else overhead * 10
    return s


def quietly(make: Callable[[], bytes | None]) -> bytes | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # RuntimeWarning / UserWarning from numpy, matplotlib
        return make()


def tool_charts(rows: list[ToolStats]) -> list[bytes | None]:
    return [
        quietly(lambda: charts.overhead_chart(rows, False)),
        quietly(lambda: charts.split_chart(rows, True)),
        quietly(lambda: charts.accuracy_chart(rows, False, 0.01)),
    ]


ROWS = {
    "single-tool": [stats("plain", (3.0,), (0.9,), (2.0,))],
    "all-zero": [stats("plain", (0.0,), (0.0,)), stats("mlflow", (0.0,), (0.0,), overhead=0.0)],
    "identical": [stats("plain", (2.0, 2.0), (1.0, 1.0)), stats("kfp", (2.0,), (1.0,))],
    "nan-first": [stats("plain", (NAN,), (NAN,), (NAN,)), stats("kfp", (2.0,), (0.5,))],
    "nan-last": [stats("kfp", (2.0,), (0.5,), overhead=NAN), stats("plain", (NAN,), (NAN,))],
    "inf": [stats("plain", (INF,), (INF,)), stats("mlflow", (1.0, 1.0, INF), (-INF, 0.5, 0.6))],
    "missing-split": [stats("plain", (1.0,), (0.9,), split={})],
    "unknown-tool": [stats("zenml", (1.0,), (0.0, 1.0))],
}


@pytest.mark.parametrize("rows", ROWS.values(), ids=ROWS.keys())
def test_tool_charts_draw_degenerate_rows(rows: list[ToolStats]) -> None:
    for png in tool_charts(rows):
        assert png is not None and png[:8] == PNG


def test_all_failed_rows_give_no_tool_charts() -> None:
    assert tool_charts([stats("plain"), stats("mlflow")]) == [None, None, None]
    only_nan = [stats("plain", (NAN,), (NAN,))]
    assert tool_charts(only_nan) == [None, None, None]


HEATMAPS: dict[str, tuple[Any, ...]] = {
    "one-cell": (["a"], ["plain"], [[5.0]], None, None),
    "missing-and-nan": (["a", "b"], ["plain"], [[NAN], [None]], [Decimal("NaN")], None),
    "inf": (["a"], ["plain", "kfp"], [[INF, -INF]], [Decimal("Infinity"), None], None),
    "ragged": (["a", "b"], ["plain", "kfp"], [[1.0], [2.0, 3.0]], None, [["x"], []]),
    "constant": (["a", "b"], ["plain", "kfp"], [[10.0, 10.0], [10.0, 10.0]], None, None),
    "no-rows": ([], ["plain"], [], None, None),
    "no-columns": (["a"], [], [[]], None, None),
}


@pytest.mark.parametrize("args", HEATMAPS.values(), ids=HEATMAPS.keys())
def test_heatmap_of_degenerate_scores(args: tuple[Any, ...]) -> None:
    rows, cols, values, totals, texts = args
    png = quietly(lambda: charts.heatmap_chart(rows, cols, values, "t", totals=totals, texts=texts))
    assert png is not None and png[:8] == PNG


D = Decimal
RANKINGS: dict[str, tuple[Any, ...]] = {
    "single-tool": (["p"], ["plain"], {"p": {"plain": D(5)}}),
    "tied": (["p"], ["plain", "kfp"], {"p": {"plain": D(10), "kfp": D(10)}}),
    "nan": (["p"], ["plain", "kfp"], {"p": {"plain": D("NaN"), "kfp": D(6)}}),
    "inf": (["p"], ["plain", "kfp"], {"p": {"plain": D("Infinity"), "kfp": D(6)}}),
    "missing-tool": (["p", "q"], ["plain", "kfp"], {"p": {"plain": D(5)}, "q": {}}),
    "missing-profile": (["p", "q"], ["plain"], {"p": {"plain": D(5)}}),
    "no-profiles": ([], ["plain"], {}),
    "no-tools": (["p"], [], {"p": {}}),
    "all-nan": (["p"], ["plain"], {"p": {"plain": D("NaN")}}),
}


@pytest.mark.parametrize("args", RANKINGS.values(), ids=RANKINGS.keys())
def test_ranking_of_degenerate_totals(args: tuple[Any, ...]) -> None:
    png = quietly(lambda: charts.ranking_chart(*args))
    assert png is not None and png[:8] == PNG
