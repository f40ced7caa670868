"""Figures from degenerate inputs: a model that learned nothing still gets every figure.

Constant, NaN/inf, single-class and empty inputs give a real PNG (a placeholder that says why
when nothing can be drawn), a PlotWarning with the reason, and never an exception or a crash.
Constant embeddings used to segfault the process inside sklearn's Barnes-Hut t-SNE.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mlopsbench.usecases.common import plots
from mlopsbench.usecases.common.plots import (
    PlotWarning,
    confusion_matrix_png,
    standard_plots,
    training_curve_png,
    tsne_png,
)

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = [str(i) for i in range(10)]


def note_of(path: Path) -> str:
    """The placeholder's reason, kept in the PNG's Description text chunk."""
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as img:
        return str(img.info.get("Description", ""))


def drawn_quietly(make: Any) -> Path:
    """Call ``make`` and fail on any warning: a clean input must not produce a note."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = make()
    assert isinstance(path, Path) and path.read_bytes()[:8] == PNG
    return path


@pytest.fixture
def no_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Degenerate embeddings must be caught before sklearn is called (it may segfault)."""

    def refuse(*args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("t-SNE was called on degenerate embeddings")

    monkeypatch.setattr(plots, "_tsne_2d", refuse)


# --- t-SNE ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_sklearn")
@pytest.mark.parametrize(
    ("embeddings", "reason"),
    [
        (np.zeros((50, 8), np.float32), "constant"),  # what a collapsed CNN produced
        (np.full((50, 8), 1e6, np.float32) + np.eye(50, 8, dtype=np.float32) * 0.05, "constant"),
        (np.full((50, 8), np.nan), "non-finite"),
        (np.full((50, 8), np.inf), "non-finite"),
        (np.random.default_rng(0).normal(size=(4, 8)), "only 4 point"),
        (np.zeros((0, 8)), "no embeddings"),
    ],
    ids=["zeros", "constant-up-to-float32-noise", "nan", "inf", "four-points", "empty"],
)
def test_tsne_degenerate_embeddings_give_a_placeholder(
    tmp_path: Path, embeddings: np.ndarray, reason: str
) -> None:
    labels = np.arange(len(embeddings)) % 10
    with pytest.warns(PlotWarning, match=reason):
        out = tsne_png(embeddings, labels, NAMES, tmp_path / "tsne.png")
    note = note_of(out)
    assert note.startswith("t-SNE skipped:") and reason in note


@pytest.mark.usefixtures("no_sklearn")
def test_tsne_constant_after_dropping_nan_rows_says_both(tmp_path: Path) -> None:
    emb = np.zeros((50, 8))
    emb[:3] = np.nan
    with pytest.warns(PlotWarning, match="constant.*3 of 50 points with NaN/inf left out"):
        tsne_png(emb, np.arange(50) % 10, NAMES, tmp_path / "tsne.png")


@pytest.mark.usefixtures("no_sklearn")
def test_tsne_embeddings_and_labels_of_different_lengths(tmp_path: Path) -> None:
    with pytest.warns(PlotWarning, match=r"shape \(50, 8\) do not match 7 labels"):
        out = tsne_png(np.ones((50, 8)), np.zeros(7), NAMES, tmp_path / "tsne.png")
    assert "skipped" in note_of(out)


def test_tsne_drops_nan_rows_and_plots_the_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.arange(30) % 3
    emb = rng.normal(size=(30, 6)) + labels[:, None] * 4
    emb[0, 2] = np.nan
    labels_with_nan = labels.astype(float)
    labels_with_nan[1] = np.nan
    with pytest.warns(PlotWarning, match="2 of 30 points with NaN/inf left out"):
        out = tsne_png(emb, labels_with_nan, NAMES, tmp_path / "tsne.png")
    assert note_of(out) == ""  # a real t-SNE picture, not a placeholder


def test_tsne_single_class_one_feature_and_unnamed_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    one_class = np.full(20, 7)
    drawn_quietly(lambda: tsne_png(rng.normal(size=(20, 4)), one_class, NAMES, tmp_path / "a.png"))
    # One feature: PCA initialisation needs two, so t-SNE starts at random.
    drawn_quietly(lambda: tsne_png(rng.normal(size=(20, 1)), one_class, NAMES, tmp_path / "b.png"))
    # Labels beyond the names (and 1-D embeddings) are shown by number.
    many = np.arange(20) % 12
    drawn_quietly(lambda: tsne_png(rng.normal(size=20), many, NAMES, tmp_path / "c.png"))


def test_tsne_of_tiny_values_does_not_crash(tmp_path: Path) -> None:
    """Values ~1e-30 (not constant) made sklearn's float32 PCA init divide 0/0 and segfault.

    Run in a child process so that a regression fails this test instead of killing pytest.
    """
    code = (
        "import numpy as np, sys; from pathlib import Path\n"
        "from mlopsbench.usecases.common.plots import tsne_png\n"
        "emb = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32) * 1e-30\n"
        "tsne_png(emb, np.arange(60) % 10, [str(i) for i in range(10)], Path(sys.argv[1]))\n"
    )
    out = tmp_path / "tiny.png"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert note_of(out) == ""  # drawn, not skipped: the values are distinct


# --- confusion matrix -------------------------------------------------------------------------


def test_confusion_matrix_all_zero_and_single_class(tmp_path: Path) -> None:
    drawn_quietly(lambda: confusion_matrix_png([[0, 0], [0, 0]], ["a", "b"], tmp_path / "z.png"))
    drawn_quietly(lambda: confusion_matrix_png([[12]], ["only"], tmp_path / "one.png"))
    # Fewer names than classes: the rest are numbered instead of failing.
    drawn_quietly(lambda: confusion_matrix_png([[1, 2], [3, 4]], ["a"], tmp_path / "m.png"))


def test_confusion_matrix_nan_cells_are_shown_as_na(tmp_path: Path) -> None:
    cm: Any = [[np.nan, 1], [2, np.inf]]
    with pytest.warns(PlotWarning, match="2 non-finite cell"):
        out = confusion_matrix_png(cm, ["a", "b"], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("confusion", [[], [[1, 2, 3]], [[1, 2], [3]]], ids=str)
def test_confusion_matrix_that_is_not_square_gives_a_placeholder(
    tmp_path: Path, confusion: Any
) -> None:
    with pytest.warns(PlotWarning, match="expected a square matrix"):
        out = confusion_matrix_png(confusion, ["a", "b"], tmp_path / "cm.png")
    assert "confusion matrix skipped" in note_of(out)


# --- training curve ---------------------------------------------------------------------------


def test_training_curve_with_nan_and_inf_losses(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": float("nan"), "train_accuracy": 0.1},
        {"epoch": 2, "train_loss": float("inf"), "train_accuracy": 0.1},
    ]
    with pytest.warns(PlotWarning, match="train_loss is missing or NaN/inf in 2 of 2"):
        out = training_curve_png(history, tmp_path / "curve.png")
    assert "train_loss" in note_of(out)


def test_training_curve_with_gaps_and_missing_keys(tmp_path: Path) -> None:
    history: list[Any] = [
        {"train_loss": 1.0},  # no epoch number: its position is used
        {"epoch": 2, "train_loss": None, "test_loss": 2.0},
        "not a row",
    ]
    with pytest.warns(PlotWarning) as record:
        training_curve_png(history, tmp_path / "curve.png")
    message = str(record[0].message)
    assert "train_loss is missing or NaN/inf in 1 of 2" in message
    assert "test_loss is missing or NaN/inf in 1 of 2" in message


def test_training_curve_of_an_empty_history(tmp_path: Path) -> None:
    with pytest.warns(PlotWarning, match="no epochs recorded"):
        out = training_curve_png([], tmp_path / "curve.png")
    assert out.read_bytes()[:8] == PNG


def test_training_curve_constant_values_draw_quietly(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 2.3, "train_accuracy": 0.1} for e in (1, 2, 3)]
    drawn_quietly(lambda: training_curve_png(history, tmp_path / "curve.png"))


# --- the standard set -------------------------------------------------------------------------


def evaluation_of(k: int = 10) -> dict[str, Any]:
    confusion = np.zeros((k, k), dtype=int)
    confusion[:, 0] = 5  # everything predicted as class 0: what a dead model does
    return {"confusion": confusion.tolist(), "labels": [str(i) for i in range(k)]}


def test_standard_plots_of_a_collapsed_model_keeps_every_artifact(tmp_path: Path) -> None:
    np.savez(tmp_path / "embeddings.npz", embeddings=np.zeros((50, 16)), labels=np.arange(50) % 10)
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"epoch": 1, "train_loss": 2.3, "train_accuracy": 0.1}]))
    with pytest.warns(PlotWarning, match="t-SNE skipped: embeddings are constant"):
        made = standard_plots(tmp_path, evaluation_of(), history)
    assert {"confusion_matrix", "tsne", "training_curve", "plot_notes"} <= set(made)
    for key in ("confusion_matrix", "tsne", "training_curve"):
        assert Path(made[key]).read_bytes()[:8] == PNG
    notes = json.loads(Path(made["plot_notes"]).read_text())
    assert list(notes) == ["tsne"] and "constant" in notes["tsne"]


def test_standard_plots_without_notes_removes_a_stale_notes_file(tmp_path: Path) -> None:
    (tmp_path / plots.PLOT_NOTES_FILE).write_text('{"tsne": "from an earlier run"}')
    made = standard_plots(tmp_path, evaluation_of(2), None)
    assert set(made) == {"confusion_matrix"}
    assert not (tmp_path / plots.PLOT_NOTES_FILE).exists()


@pytest.mark.parametrize("content", ["{not json", '{"epoch": 1}'], ids=["not-json", "not-a-list"])
def test_standard_plots_with_an_unusable_history_notes_it(tmp_path: Path, content: str) -> None:
    history = tmp_path / "history.json"
    history.write_text(content)
    with pytest.warns(PlotWarning, match="training curve skipped"):
        made = standard_plots(tmp_path, evaluation_of(2), history)
    assert "training_curve" not in made
    assert "training_curve" in json.loads(Path(made["plot_notes"]).read_text())
