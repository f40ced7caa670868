"""Matplotlib figures every tool attaches to its runs (Agg backend: no display needed).

A run whose model learned nothing is still a valid run, so every figure copes with degenerate
input (constant or NaN/inf values, one class, no data): what cannot be drawn becomes a
placeholder PNG that says why, and the reason is returned as a note (``plot_notes.json``) and
raised as a :class:`PlotWarning`, never as an exception or a crash.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# Barnes-Hut t-SNE segfaults the process on constant input (sklearn 1.x): a spread this small
# relative to the values' magnitude is float32 rounding noise, i.e. constant embeddings.
CONSTANT_RTOL = 1e-6
MIN_TSNE_POINTS = 5
TSNE_TITLE = "t-SNE of penultimate-layer embeddings"


class PlotWarning(UserWarning):
    """A figure was replaced by a placeholder or drawn from cleaned-up data."""


class Drawn(NamedTuple):
    path: Path
    note: str | None = None  # why the figure is a placeholder or incomplete


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _warn(note: str | None) -> None:
    if note:
        warnings.warn(note, PlotWarning, stacklevel=3)


# --- confusion matrix -------------------------------------------------------------------------


def confusion_matrix_png(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path
) -> Path:
    drawn = _confusion(confusion, labels, path)
    _warn(drawn.note)
    return drawn.path


def _confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> Drawn:
    try:
        cm = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):  # ragged rows or non-numbers
        cm = np.zeros(0)
    if cm.ndim != 2 or cm.size == 0 or cm.shape[0] != cm.shape[1]:
        note = f"confusion matrix skipped: expected a square matrix, got shape {cm.shape}"
        return Drawn(placeholder_png(path, "Confusion matrix", note), note)
    finite = np.isfinite(cm)
    names = [str(labels[i]) if i < len(labels) else str(i) for i in range(cm.shape[0])]
    _draw_confusion(np.where(finite, cm, np.nan), names, path)
    bad = int(cm.size - finite.sum())
    return Drawn(path, f"confusion matrix: {bad} non-finite cell(s) shown as n/a" if bad else None)


def _draw_confusion(cm: np.ndarray, names: list[str], path: Path) -> None:
    plt = _pyplot()
    size = max(3.5, 0.45 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    top = float(np.nanmax(cm)) if np.isfinite(cm).any() else 0.0
    ax.imshow(np.ma.masked_invalid(cm), cmap="Blues", vmin=0, vmax=max(top, 1.0))
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(cm):
        colour = "white" if value > top / 2 else "black"  # False for NaN
        ax.text(j, i, _cell_text(value), ha="center", va="center", fontsize=8, color=colour)
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    _save(fig, path)


def _cell_text(value: float) -> str:
    if np.isnan(value):
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


# --- training curve ---------------------------------------------------------------------------


def training_curve_png(history: Sequence[dict[str, float]], path: Path) -> Path:
    drawn = _curve(history, path)
    _warn(drawn.note)
    return drawn.path


def _curve(history: Sequence[dict[str, float]], path: Path) -> Drawn:
    rows = [h for h in history if isinstance(h, dict)]
    epochs = [_number(h.get("epoch", i + 1)) for i, h in enumerate(rows)]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    notes = [] if rows else ["no epochs recorded"]
    for key, ax in zip(("loss", "accuracy"), axes, strict=True):
        notes += _curve_axis(ax, key, rows, epochs)
    fig.tight_layout()
    note = "training curve: " + "; ".join(notes) if notes else None
    _save(fig, path, note)
    return Drawn(path, note)


def _curve_axis(ax: Any, key: str, rows: list[dict[str, Any]], epochs: list[float]) -> list[str]:
    """Plot train/test ``key`` on ``ax``; NaN/inf values become gaps. Returns what was wrong."""
    notes, seen, plotted = [], False, False
    for split in ("train", "test"):
        name = f"{split}_{key}"
        if not any(name in h for h in rows):
            continue
        seen = True
        values = np.array([_number(h.get(name)) for h in rows])
        finite = np.isfinite(values)
        if not finite.all():
            bad = int((~finite).sum())
            notes.append(f"{name} is missing or NaN/inf in {bad} of {len(values)} epoch(s)")
        if finite.any():
            ax.plot(epochs, np.where(finite, values, np.nan), marker="o", label=split)
            plotted = True
    ax.set_xlabel("epoch")
    ax.set_title(key)
    if plotted:
        ax.legend()
    else:
        empty = "no finite values" if seen else "no data"
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    return notes


def _number(value: Any) -> float:
    """A float, or NaN for anything that is not a number (None, strings...)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# --- t-SNE ------------------------------------------------------------------------------------


def tsne_png(
    embeddings: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path: Path,
    seed: int = 42,
    max_points: int = 1000,
    max_iter: int = 500,
) -> Path:
    """2-D t-SNE of penultimate-layer embeddings, coloured by true class.

    Degenerate embeddings (constant, all NaN/inf, fewer than 5 points) give a placeholder PNG
    that says why, instead of handing them to sklearn (whose Barnes-Hut code can segfault).
    """
    drawn = _tsne(embeddings, labels, label_names, path, seed, max_points, max_iter)
    _warn(drawn.note)
    return drawn.path


def _tsne(
    embeddings: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path: Path,
    seed: int,
    max_points: int,
    max_iter: int,
) -> Drawn:
    emb, labs, problem = _clean_embeddings(embeddings, labels)
    if emb.shape[0] > max_points:
        keep = np.random.default_rng(seed).choice(emb.shape[0], max_points, replace=False)
        emb, labs = emb[keep], labs[keep]
    skip = (problem or "no embeddings") if emb.shape[0] == 0 else _tsne_skip_reason(emb)
    points = None if skip else _tsne_2d(emb, seed, max_iter)
    if points is not None and not np.isfinite(points).all():
        skip = "t-SNE produced non-finite coordinates"
    if skip or points is None:
        note = f"t-SNE skipped: {skip}" + (f"; {problem}" if problem and problem != skip else "")
        return Drawn(placeholder_png(path, TSNE_TITLE, note), note)
    _draw_tsne(points, labs, label_names, path)
    return Drawn(path, f"t-SNE: {problem}" if problem else None)


def _clean_embeddings(
    embeddings: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """2-D float64 embeddings and int labels with non-finite rows dropped (and what was wrong)."""
    labs = np.asarray(labels).reshape(-1)
    emb = np.asarray(embeddings)
    if emb.ndim == 0 or emb.shape[0] != labs.shape[0]:
        problem = f"embeddings of shape {tuple(emb.shape)} do not match {len(labs)} labels"
        return np.zeros((0, 2)), np.zeros(0, np.int64), problem
    try:
        emb = emb.reshape(len(emb), int(np.prod(emb.shape[1:]))).astype(np.float64)
        labs = labs.astype(np.float64)
    except (TypeError, ValueError):
        return np.zeros((0, 2)), np.zeros(0, np.int64), "embeddings or labels are not numeric"
    ok = np.isfinite(emb).all(axis=1) & np.isfinite(labs)
    bad = int((~ok).sum())
    if bad == len(ok):  # every point non-finite, or no points at all
        why = "embeddings are non-finite (NaN/inf)" if bad else "no embeddings"
        return emb[ok], labs[ok].astype(np.int64), why
    left_out = f"{bad} of {len(ok)} points with NaN/inf left out" if bad else None
    return emb[ok], labs[ok].astype(np.int64), left_out


def _tsne_skip_reason(emb: np.ndarray) -> str | None:
    """Why these finite embeddings cannot go to t-SNE, or None when they can."""
    if emb.shape[0] < MIN_TSNE_POINTS:
        return f"only {emb.shape[0]} point(s), t-SNE needs at least {MIN_TSNE_POINTS}"
    spread = float(np.ptp(emb, axis=0).max()) if emb.size else 0.0
    if spread == 0.0 or spread <= CONSTANT_RTOL * float(np.abs(emb).max()):
        return "embeddings are constant (every input maps to the same vector)"
    return None


def _tsne_2d(embeddings: np.ndarray, seed: int, max_iter: int) -> np.ndarray:
    """t-SNE on one thread: its OpenMP loop slows ~10x when the cores are shared with others.

    500 iterations (250 of them early exaggeration) are plenty for a picture. Input is centred
    and scaled to unit spread first: t-SNE does not depend on the scale, but tiny values
    underflow in sklearn's float32 PCA initialisation (0/0, then a segfault).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = embeddings - embeddings.mean(axis=0)
    x = x / np.ptp(x, axis=0).max()
    n = x.shape[0]
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    with threadpool_limits(limits=1):
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            random_state=seed,
            init="pca" if x.shape[1] >= 2 else "random",  # PCA needs 2 features for 2 components
            max_iter=max(250, max_iter),
        )
        return np.asarray(tsne.fit_transform(x))


def _draw_tsne(
    points: np.ndarray, labels: np.ndarray, label_names: Sequence[str], path: Path
) -> None:
    """One scatter per class, so the legend names exactly the classes present (even just one)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k in np.unique(labels):
        name = label_names[k] if 0 <= k < len(label_names) else str(k)
        pts = points[labels == k]
        ax.scatter(pts[:, 0], pts[:, 1], color=cmap(int(k) % 10), s=8, label=name)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(TSNE_TITLE)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    _save(fig, path)


# --- placeholder and saving -------------------------------------------------------------------


def placeholder_png(path: Path, title: str, note: str) -> Path:
    """A figure that says why the real one could not be drawn (the note is also PNG metadata)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(note, 48), ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path, note)


def _save(fig: Any, path: Path, note: str | None = None) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # atomic: no half-written PNG
    metadata = {"Description": note} if note and path.suffix == ".png" else None
    fig.savefig(tmp, dpi=100, metadata=metadata)
    tmp.replace(path)
    plt.close(fig)
    return path


# --- the standard set -------------------------------------------------------------------------

# File names every use case's evaluate stage writes (tools and the harness look for these).
EMBEDDINGS_FILE = "embeddings.npz"
CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "training_curve.png"
TSNE_PNG = "tsne.png"
PLOT_NOTES_FILE = "plot_notes.json"  # only when a figure is a placeholder or incomplete


def standard_plots(
    out_dir: str | Path, evaluation: dict[str, Any], history_path: str | Path | None
) -> dict[str, str]:
    """Confusion matrix, t-SNE of the saved embeddings and (after training) the training curve.

    ``evaluation`` is a ``ClassificationReport.to_dict()``; embeddings are read from
    ``out_dir/embeddings.npz`` (arrays ``embeddings`` and ``labels``) when the stage wrote them.
    Returns artifact name -> path. A figure that had to be replaced or cleaned up is named with
    its reason in ``plot_notes`` (a JSON file), and each reason is raised as a PlotWarning.
    """
    out_dir = Path(out_dir)
    labels = evaluation["labels"]
    drawn = {
        "confusion_matrix": _confusion(evaluation["confusion"], labels, out_dir / CONFUSION_PNG)
    }
    notes: dict[str, str] = {}
    if (out_dir / EMBEDDINGS_FILE).exists():
        drawn["tsne"] = _tsne_from_file(out_dir / EMBEDDINGS_FILE, labels, out_dir / TSNE_PNG)
    history, history_note = _read_history(history_path)
    if history_note:
        notes["training_curve"] = history_note
    elif history:  # no curve without training (e.g. a pre-trained model used as is)
        drawn["training_curve"] = _curve(history, out_dir / CURVE_PNG)
    notes.update({key: d.note for key, d in drawn.items() if d.note})
    made = {key: str(d.path) for key, d in drawn.items()}
    notes_file = _write_notes(out_dir / PLOT_NOTES_FILE, notes)
    if notes_file is not None:
        made["plot_notes"] = str(notes_file)
    return made


def _tsne_from_file(emb_path: Path, label_names: Sequence[str], path: Path) -> Drawn:
    with np.load(emb_path) as emb:
        return _tsne(emb["embeddings"], emb["labels"], label_names, path, 42, 1000, 500)


def _read_history(history_path: str | Path | None) -> tuple[list[dict[str, Any]], str | None]:
    """The saved history rows ([] when there are none) and why they are unusable, if they are."""
    if history_path is None or not Path(history_path).exists():
        return [], None
    try:
        history = json.loads(Path(history_path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [], f"training curve skipped: cannot read {history_path} ({type(exc).__name__})"
    if not isinstance(history, list):
        return [], f"training curve skipped: {history_path} does not hold a list of epochs"
    return history, None


def _write_notes(path: Path, notes: dict[str, str]) -> Path | None:
    """Record (and warn about) the notes; without notes, remove a stale file from a rerun."""
    path.unlink(missing_ok=True)
    if not notes:
        return None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(notes, indent=2) + "\n")
    tmp.replace(path)
    for note in notes.values():
        warnings.warn(note, PlotWarning, stacklevel=3)
    return path
