"""The report's charts as PNG bytes (matplotlib, Agg): embedded in index.html as base64."""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from mlopsbench.report.aggregate import SPLIT_PARTS, ToolStats

SPLIT_COLOURS = {
    "import": "#9e9e9e",
    "data": "#80cbc4",
    "train": "#42a5f5",
    "evaluate": "#ab47bc",
    "tool": "#ef5350",
}
TOOL_COLOURS = {
    "plain": "#607d8b",
    "mlflow": "#0194e2",
    "metaflow": "#ff7043",
    "airflow": "#00ad46",
    "kfp": "#7e57c2",
}


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


def overhead_chart(stats: Sequence[ToolStats], many_models: bool) -> bytes | None:
    rows = [s for s in stats if s.wall.median is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4))
    labels = [_label(s, many_models) for s in rows][::-1]
    rows = rows[::-1]
    med = [s.wall.median or 0.0 for s in rows]
    err = [
        [m - (s.wall.low or m) for s, m in zip(rows, med, strict=True)],
        [(s.wall.high or m) - m for s, m in zip(rows, med, strict=True)],
    ]
    colours = [TOOL_COLOURS.get(s.tool, "#888") for s in rows]
    ax.barh(labels, med, xerr=err, color=colours, capsize=3)
    cpu = [s.cpu.median for s in rows]
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
        note = (
            "baseline"
            if s.tool == "plain"
            else (
                f"+{s.overhead_s:.1f} s ({s.overhead_pct:+.0f}%)"
                if s.overhead_s is not None
                else ""
            )
        )
        ax.text(med[i], i, f"  {med[i]:.1f} s  {note}", va="center", fontsize=8)
    ax.set_xlabel("median wall time per run (s), whiskers = min..max over repeats")
    ax.set_title("Wall time and overhead over plain")
    ax.set_xlim(0, max(med) * 1.6)
    return _png(fig)


def split_chart(stats: Sequence[ToolStats], many_models: bool) -> bytes | None:
    rows = [s for s in stats if s.wall.median is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.6))
    rows = rows[::-1]
    labels = [_label(s, many_models) for s in rows]
    left = [0.0] * len(rows)
    for part in SPLIT_PARTS:
        widths = [s.split[part].median or 0.0 for s in rows]
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


def accuracy_chart(stats: Sequence[ToolStats], many_models: bool, tolerance: float) -> bytes | None:
    rows = [s for s in stats if s.accuracy.median is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    xs = range(len(rows))
    med = [s.accuracy.median or 0.0 for s in rows]
    err = [
        [m - (s.accuracy.low or m) for s, m in zip(rows, med, strict=True)],
        [(s.accuracy.high or m) - m for s, m in zip(rows, med, strict=True)],
    ]
    ax.errorbar(xs, med, yerr=err, fmt="none", ecolor="#333", capsize=4)
    ax.scatter(xs, med, c=[TOOL_COLOURS.get(s.tool, "#888") for s in rows], s=70, zorder=3)
    for s in rows:
        if s.tool == "plain" and s.accuracy.median is not None:
            ax.axhspan(
                s.accuracy.median - tolerance,
                s.accuracy.median + tolerance,
                color="#607d8b",
                alpha=0.15,
                label=f"plain ± {tolerance:g}",
            )
    for x, m in zip(xs, med, strict=True):
        ax.annotate(
            f"{m:.4f}", (x, m), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
        )
    ax.set_xticks(list(xs), [_label(s, many_models) for s in rows])
    lo, hi = min(s.accuracy.low or 0 for s in rows), max(s.accuracy.high or 0 for s in rows)
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

    plt = _plt()
    grid = np.array([[np.nan if v is None else float(v) for v in row] for row in values])
    fig, ax = plt.subplots(figsize=(1.3 * len(col_labels) + 3.2, 0.5 * len(row_labels) + 1.6))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#e4e4e4")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=10, aspect="auto")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            text = texts[i][j] if texts is not None else ("n/a" if v is None else f"{float(v):g}")
            ax.text(
                j,
                i,
                text,
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
                "n/a" if t is None else f"{t}",
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


def ranking_chart(
    profiles: Sequence[str], tools: Sequence[str], totals: dict[str, dict[str, Decimal]]
) -> bytes:
    """Weighted totals per profile, grouped bars, with each tool's rank on its bar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / max(1, len(tools))
    for i, tool in enumerate(tools):
        xs = [p + i * width - 0.4 + width / 2 for p in range(len(profiles))]
        ys = [float(totals[p][tool]) for p in profiles]
        ax.bar(xs, ys, width=width, color=TOOL_COLOURS.get(tool, "#888"), label=tool)
        for x, p in zip(xs, profiles, strict=True):
            order = sorted(totals[p].values(), reverse=True)
            rank = order.index(totals[p][tool]) + 1
            ax.text(x, float(totals[p][tool]) + 0.05, f"#{rank}", ha="center", fontsize=7)
    ax.set_xticks(range(len(profiles)), profiles)
    lo = min(float(v) for p in profiles for v in totals[p].values())
    ax.set_ylim(max(0.0, lo - 1.0), 10)
    ax.set_ylabel("weighted total (paper scores)")
    ax.set_title("Ranking per weight profile (#n = rank)")
    ax.legend(fontsize=8, ncol=len(tools), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return _png(fig)
