"""The report's charts as PNG bytes (matplotlib, Agg): embedded in index.html as base64."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from mlopsbench.report.aggregate import SPLIT_PARTS, Spread, ToolStats

SPLIT_COLOURS = {
    "import": "#9e9e9e",
    "data": "#80cbc4",
    "train": "#42a5f5",
    "evaluate": "#ab47bc",
    "tool": "#ef5350",
}
DEFAULT_COLOUR = "#888888"  # a tool whose declaration names no colour


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _label(s: ToolStats, many_models: bool) -> str:
    return f"{s.tool}\n{s.model}" if many_models else s.tool


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite.

    Results rows come from JSON written by many processes: a NaN or inf there (a diverged
    model, a clock glitch) must not break a chart's axis limits, so it counts as missing.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, ArithmeticError):  # None, text, signalling Decimal NaN
        return None
    return number if math.isfinite(number) else None


def _or(value: Any, default: float) -> float:
    """The finite float of ``value``, else ``default`` (unlike ``or``, 0.0 is kept)."""
    number = _finite(value)
    return default if number is None else number


def _whiskers(spreads: Sequence[Spread], med: Sequence[float]) -> list[list[float]]:
    """Error-bar lengths below/above each median; a missing or non-finite end draws none."""
    below = [max(0.0, m - _or(sp.low, m)) for sp, m in zip(spreads, med, strict=True)]
    above = [max(0.0, _or(sp.high, m) - m) for sp, m in zip(spreads, med, strict=True)]
    return [below, above]


def _no_data_chart(title: str, note: str = "no data to chart") -> bytes:
    """A small figure in place of a chart that has nothing to show (callers expect bytes)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.4, note, ha="center", va="center", transform=ax.transAxes, color="#666666")
    return _png(fig)


def overhead_chart(
    stats: Sequence[ToolStats], many_models: bool, colours: Mapping[str, str] | None = None
) -> bytes | None:
    colours = colours or {}
    rows = [s for s in stats if _finite(s.wall.median) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4))
    labels = [_label(s, many_models) for s in rows][::-1]
    rows = rows[::-1]
    med = [_or(s.wall.median, 0.0) for s in rows]
    err = _whiskers([s.wall for s in rows], med)
    colours = [colours.get(s.tool, DEFAULT_COLOUR) for s in rows]
    ax.barh(labels, med, xerr=err, color=colours, capsize=3)
    cpu = [_finite(s.cpu.median) for s in rows]
    if any(c is not None for c in cpu):
        # CPU seconds as a thin dark bar inside: the part of the wall time spent computing.
        ax.barh(labels, [c or 0.0 for c in cpu], height=0.25, color="#263238")
        from matplotlib.patches import Patch

        handles = [
            Patch(color="#b0bec5", label="wall"),
            Patch(color="#263238", label="CPU (user+sys)"),
        ]
        ax.legend(handles=handles, fontsize=8, loc="lower right")
    for i, s in enumerate(rows):
        ax.text(med[i], i, f"  {med[i]:.1f} s  {_overhead_note(s)}", va="center", fontsize=8)
    ax.set_xlabel("median wall time per run (s), whiskers = min..max over repeats")
    ax.set_title("Wall time and overhead over plain")
    top = max(med) if max(med) > 0 else 1.0  # all-zero times: identical limits are invalid
    ax.set_xlim(0, top * 1.6)
    return _png(fig)


def _overhead_note(s: ToolStats) -> str:
    if s.tool == "plain":
        return "baseline"
    seconds, pct = _finite(s.overhead_s), _finite(s.overhead_pct)
    if seconds is None:
        return ""
    return f"+{seconds:.1f} s ({pct:+.0f}%)" if pct is not None else f"+{seconds:.1f} s"


def split_chart(stats: Sequence[ToolStats], many_models: bool) -> bytes | None:
    rows = [s for s in stats if _finite(s.wall.median) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.6))
    rows = rows[::-1]
    labels = [_label(s, many_models) for s in rows]
    left = [0.0] * len(rows)
    for part in SPLIT_PARTS:
        widths = [_or(s.split[part].median if part in s.split else None, 0.0) for s in rows]
        ax.barh(labels, widths, left=left, color=SPLIT_COLOURS[part], label=part)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("seconds (medians)")
    ax.set_title("Where the time goes")
    ax.legend(
        ncol=5,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25 if len(rows) < 4 else -0.12),
    )
    return _png(fig)


def accuracy_chart(
    stats: Sequence[ToolStats],
    many_models: bool,
    tolerance: float,
    colours: Mapping[str, str] | None = None,
) -> bytes | None:
    colours = colours or {}
    rows = [s for s in stats if _finite(s.accuracy.median) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    xs = range(len(rows))
    med = [_or(s.accuracy.median, 0.0) for s in rows]
    err = _whiskers([s.accuracy for s in rows], med)
    ax.errorbar(xs, med, yerr=err, fmt="none", ecolor="#333", capsize=4)
    ax.scatter(xs, med, c=[colours.get(s.tool, DEFAULT_COLOUR) for s in rows], s=70, zorder=3)
    for s, m in zip(rows, med, strict=True):
        if s.tool == "plain":
            ax.axhspan(
                m - tolerance,
                m + tolerance,
                color="#607d8b",
                alpha=0.15,
                label=f"plain ± {tolerance:g}",
            )
    for x, m in zip(xs, med, strict=True):
        ax.annotate(
            f"{m:.4f}", (x, m), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
        )
    ax.set_xticks(list(xs), [_label(s, many_models) for s in rows])
    lo = min(m - e for m, e in zip(med, err[0], strict=True))
    hi = max(m + e for m, e in zip(med, err[1], strict=True))
    pad = max(0.01, (hi - lo) * 0.5)
    ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + 0.005)
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy per tool (same config and seed)")
    if any(s.tool == "plain" for s in rows):
        ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def heatmap_chart(
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: Sequence[Sequence[float | None]],
    title: str,
    totals: Sequence[Decimal | None] | None = None,
    texts: Sequence[Sequence[str]] | None = None,
) -> bytes:
    """Scores 0-10 as a heatmap: None cells grey (text from ``texts`` or n/a); optional totals row."""
    import numpy as np

    if not row_labels or not col_labels:
        return _no_data_chart(title)
    plt = _plt()
    cells = _cells(values, len(row_labels), len(col_labels))
    grid = np.array([[np.nan if v is None else v for v in row] for row in cells])
    fig, ax = plt.subplots(figsize=(1.3 * len(col_labels) + 3.2, 0.5 * len(row_labels) + 1.6))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#e4e4e4")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=10, aspect="auto")
    for (i, j), v in np.ndenumerate(np.array(cells, dtype=object)):
        ax.text(
            j,
            i,
            _cell_text(texts, i, j, v),
            ha="center",
            va="center",
            fontsize=9,
            color="#666666" if v is None else "black",
        )
    ylabels = list(row_labels)
    if totals is not None:
        ylabels = [*ylabels, "Weighted total"]
        for j, t in enumerate(totals):
            ax.text(
                j,
                len(row_labels),
                "n/a" if _finite(t) is None else f"{t}",
                ha="center",
                va="center",
                fontsize=10,
                fontweight="bold",
            )
        ax.set_ylim(len(row_labels) + 0.5, -0.5)
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_title(title)
    return _png(fig)


def _cells(
    values: Sequence[Sequence[float | None]], n_rows: int, n_cols: int
) -> list[list[float | None]]:
    """One cell per row x column label: short rows are padded, NaN/inf count as missing."""
    rows = [list(values[i]) if i < len(values) else [] for i in range(n_rows)]
    return [[_finite(row[j]) if j < len(row) else None for j in range(n_cols)] for row in rows]


def _cell_text(texts: Sequence[Sequence[str]] | None, i: int, j: int, v: float | None) -> str:
    if texts is not None and i < len(texts) and j < len(texts[i]):
        return texts[i][j]
    return "n/a" if v is None else f"{v:g}"


def ranking_chart(
    profiles: Sequence[str],
    tools: Sequence[str],
    totals: dict[str, dict[str, Decimal]],
    colours: Mapping[str, str] | None = None,
) -> bytes:
    """Weighted totals per profile, grouped bars, with each tool's rank on its bar."""
    colours = colours or {}
    title = "Ranking per weight profile (#n = rank)"
    # A tool without a finite total under a profile (missing, NaN) gets no bar there.
    scores = {p: _finite_totals(totals.get(p, {})) for p in profiles}
    if not tools or not any(scores.values()):
        return _no_data_chart(title)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / max(1, len(tools))
    for i, tool in enumerate(tools):
        xs = [p + i * width - 0.4 + width / 2 for p in range(len(profiles))]
        ys = [scores[p].get(tool, 0.0) for p in profiles]
        ax.bar(xs, ys, width=width, color=colours.get(tool, DEFAULT_COLOUR), label=tool)
        for x, p in zip(xs, profiles, strict=True):
            if tool in scores[p]:
                order = sorted(scores[p].values(), reverse=True)
                rank = order.index(scores[p][tool]) + 1
                ax.text(x, scores[p][tool] + 0.05, f"#{rank}", ha="center", fontsize=7)
    ax.set_xticks(range(len(profiles)), profiles)
    lo = min(v for p in profiles for v in scores[p].values())
    ax.set_ylim(max(0.0, min(lo, 9.0) - 1.0), 10)  # a total above 9 still shows its bar
    ax.set_ylabel("weighted total (paper scores)")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=len(tools), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return _png(fig)


def _finite_totals(row: dict[str, Decimal]) -> dict[str, float]:
    return {tool: v for tool, total in row.items() if (v := _finite(total)) is not None}


def grouped_bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    ylabel: str,
) -> bytes:
    """One group of bars per category (a tool), one bar per series (e.g. 1 and 2 workers)."""
    if not categories or not series:
        return _no_data_chart(title)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(categories) + 2), 3.6))
    width = 0.8 / len(series)
    for n, (name, values) in enumerate(series.items()):
        xs = [i + (n - (len(series) - 1) / 2) * width for i in range(len(categories))]
        heights = [_or(v, 0.0) for v in values]
        bars = ax.bar(xs, heights, width=width, label=name)
        for bar, value in zip(bars, values, strict=True):
            if _finite(value) is not None:
                ax.annotate(
                    f"{value:.1f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(categories)), list(categories), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def rank_shift_chart(
    profiles: Sequence[str],
    paper_ranks: Mapping[str, Mapping[str, int]],
    measured_ranks: Mapping[str, Mapping[str, int]],
    colours: Mapping[str, str],
) -> bytes:
    """Per weight profile, each tool's rank in the paper (left) and measured (right)."""
    shown = [p for p in profiles if paper_ranks.get(p) and measured_ranks.get(p)]
    if not shown:
        return _no_data_chart("How the ranking moves", "no profile with measured totals")
    plt = _plt()
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown) + 1, 3.4), squeeze=False)
    for ax, profile in zip(axes[0], shown, strict=True):
        paper, measured = paper_ranks[profile], measured_ranks[profile]
        worst = max([*paper.values(), *measured.values()])
        for tool in paper:
            if tool not in measured:
                continue
            colour = colours.get(tool, DEFAULT_COLOUR)
            ax.plot([0, 1], [paper[tool], measured[tool]], marker="o", color=colour)
            ax.text(-0.08, paper[tool], tool, ha="right", va="center", fontsize=7)
            ax.text(1.08, measured[tool], tool, ha="left", va="center", fontsize=7)
        ax.set_xlim(-0.7, 1.7)
        ax.set_ylim(worst + 0.5, 0.5)
        ax.set_xticks([0, 1], ["paper", "measured"])
        ax.set_yticks(range(1, worst + 1))
        ax.set_title(profile, fontsize=9)
    fig.suptitle("How the ranking moves: paper scores vs measured scores, per weight profile")
    return _png(fig)
