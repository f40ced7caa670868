"""Matplotlib figures every tool attaches to its runs (Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path
) -> Path:
    plt = _pyplot()
    cm = np.asarray(confusion)
    size = max(3.5, 0.45 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return _save(fig, path)


def training_curve_png(history: Sequence[dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(8, 3.2))
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        for split in ("train", "test"):
            name = f"{split}_{key}"
            if history and name in history[0]:
                ax.plot(epochs, [h[name] for h in history], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def tsne_png(
    embeddings: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    path: Path,
    seed: int = 42,
    max_points: int = 1000,
    max_iter: int = 500,
) -> Path:
    """2-D t-SNE of penultimate-layer embeddings, coloured by true class."""
    plt = _pyplot()
    n = len(labels)
    if n > max_points:
        keep = np.random.default_rng(seed).choice(n, max_points, replace=False)
        embeddings, labels = embeddings[keep], labels[keep]
    points = _tsne_2d(np.asarray(embeddings, dtype=np.float32), seed, max_iter)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=8)
    handles, _ = scatter.legend_elements()
    ax.legend(handles, [label_names[int(i)] for i in np.unique(labels)], fontsize=7, loc="best")
    ax.set_title("t-SNE of penultimate-layer embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def _tsne_2d(embeddings: np.ndarray, seed: int, max_iter: int) -> np.ndarray:
    """t-SNE on one thread: its OpenMP loop slows ~10x when the cores are shared with others.

    500 iterations (250 of them early exaggeration) are plenty for a picture; fewer than 5
    points cannot be embedded, so they are shown by their first two coordinates.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = embeddings.shape[0]
    if n < 5:
        flat = embeddings.reshape(n, -1)
        return np.pad(flat, ((0, 0), (0, max(0, 2 - flat.shape[1]))))[:, :2]
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    with threadpool_limits(limits=1):
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            random_state=seed,
            init="pca",
            max_iter=max(250, max_iter),
        )
        return np.asarray(tsne.fit_transform(embeddings))


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # atomic: no half-written PNG
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(fig)
    return path


# File names every use case's evaluate stage writes (tools and the harness look for these).
EMBEDDINGS_FILE = "embeddings.npz"
CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "training_curve.png"
TSNE_PNG = "tsne.png"


def standard_plots(
    out_dir: str | Path, evaluation: dict[str, Any], history_path: str | Path | None
) -> dict[str, str]:
    """Confusion matrix, t-SNE of the saved embeddings and (after training) the training curve.

    ``evaluation`` is a ``ClassificationReport.to_dict()``; embeddings are read from
    ``out_dir/embeddings.npz`` (arrays ``embeddings`` and ``labels``) when the stage wrote them.
    """
    import json

    out_dir = Path(out_dir)
    made = {
        "confusion_matrix": str(
            confusion_matrix_png(
                evaluation["confusion"], evaluation["labels"], out_dir / CONFUSION_PNG
            )
        )
    }
    emb_path = out_dir / EMBEDDINGS_FILE
    if emb_path.exists():
        with np.load(emb_path) as emb:
            if len(emb["labels"]) >= 5:  # t-SNE needs a handful of points
                made["tsne"] = str(
                    tsne_png(
                        emb["embeddings"], emb["labels"], evaluation["labels"], out_dir / TSNE_PNG
                    )
                )
    if history_path is not None and Path(history_path).exists():
        history = json.loads(Path(history_path).read_text())
        if history:
            made["training_curve"] = str(training_curve_png(history, out_dir / CURVE_PNG))
    return made
