"""Movie reviews behind one loader interface, sampled per class with a seed.

Sources: ``hf`` (``stanfordnlp/imdb``, the paper's), ``aclimdb`` (the original Stanford folder
layout), ``file`` (CSV/TSV/Parquet/JSONL with ``text,label`` columns) and ``fixture`` (the
reviews shipped in ``fixtures/reviews.jsonl``). Every source yields a *pool* (ids + labels, with
texts read on demand so that an aclImdb folder of 25,000 files only reads the sampled ones);
:func:`load_test_reviews` and :func:`load_train_reviews` draw stratified samples from it.
Stages hand samples over as ``reviews.jsonl``. Only numpy is imported at module level.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlopsbench.errors import DataError
from mlopsbench.usecases.sentiment.config import DEFAULT_TRAIN_SAMPLE, LABELS, SentimentConfig

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "reviews.jsonl"
HF_DATASET = "stanfordnlp/imdb"

# Label spellings accepted in files (case-insensitive); the value is the label id.
_LABEL_WORDS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}


@dataclass(frozen=True)
class Reviews:
    """A labelled sample of reviews (label 0 = negative, 1 = positive)."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray  # int64 (N,)
    source: str

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.texts) == len(self.labels):
            raise DataError("reviews: ids, texts and labels differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"{self.source}: review ids are not unique")
        if self.labels.size and not np.isin(self.labels, (0, 1)).all():
            raise DataError(f"{self.source}: labels must be 0 (negative) or 1 (positive)")
        for rid, text in zip(self.ids, self.texts, strict=True):
            if not text.strip():
                raise DataError(f"{self.source}: review {rid} has an empty text")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def digest(self) -> str:
        """Content hash (first 16 hex chars of SHA-256): the sample's identity for lineage."""
        h = hashlib.sha256()
        for rid, text, label in zip(self.ids, self.texts, self.labels.tolist(), strict=True):
            h.update(f"{rid}\t{label}\t{text}\n".encode())
        return h.hexdigest()[:16]

    def summary(self, split: str = "test") -> dict[str, Any]:
        return {
            "source": self.source,
            "digest": self.digest,
            f"n_{split}": len(self),
            "n_negative": int((self.labels == 0).sum()),
            "n_positive": int((self.labels == 1).sum()),
        }

    def save(self, path: str | Path) -> Path:
        """Write as JSONL (``id``, ``text``, ``label`` name), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rid, text, label in zip(self.ids, self.texts, self.labels.tolist(), strict=True):
                fh.write(json.dumps({"id": rid, "text": text, "label": LABELS[label]}) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Reviews:
        """Read a hand-over file written by :meth:`save` (or any JSONL with id/text/label)."""
        pool = _file_pool(Path(path), source=f"jsonl:{path}")
        return pool.take(np.arange(len(pool.labels)))


@dataclass(frozen=True)
class _Pool:
    """Ids and labels of a whole split; texts are read only for the rows that are taken."""

    ids: Sequence[str]
    labels: np.ndarray
    read: Callable[[np.ndarray], list[str]]
    source: str

    def take(self, index: np.ndarray) -> Reviews:
        return Reviews(
            ids=tuple(str(self.ids[i]) for i in index),
            texts=tuple(self.read(index)),
            labels=self.labels[index].astype(np.int64),
            source=self.source,
        )


# --- sampling ---------------------------------------------------------------------------


def stratified_indices(
    labels: np.ndarray,
    n: int,
    seed: int | Sequence[int],
    source: str,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of exactly ``n // 2`` rows of each class, drawn with ``seed``, in pool order."""
    rng = np.random.default_rng(seed)
    allowed = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        allowed[exclude] = False
    per_class = n // 2
    chosen = []
    for label_id, name in enumerate(LABELS):
        candidates = np.flatnonzero((labels == label_id) & allowed)
        if len(candidates) < per_class:
            raise DataError(
                f"{source}: only {len(candidates)} {name} reviews available, {per_class} needed "
                f"(a sample of {n} takes half of each class; use a smaller --sample)"
            )
        chosen.append(rng.choice(candidates, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def load_test_reviews(cfg: SentimentConfig) -> Reviews:
    """The evaluation sample: ``cfg.test_size`` reviews, half per class, drawn with the seed."""
    pool = _pool(cfg, "test")
    return pool.take(stratified_indices(pool.labels, cfg.test_size, cfg.seed, pool.source))


def load_train_reviews(cfg: SentimentConfig) -> Reviews:
    """The fine-tuning sample, disjoint from the test sample.

    IMDB (hf, aclimdb) has a training split: ``train_sample_size`` (default 1000) reviews from
    it. A single file or the fixture has one pool: every review not in the test sample (or a
    stratified ``train_sample_size`` of them).
    """
    if cfg.data_source in ("hf", "aclimdb"):
        pool = _pool(cfg, "train")
        n = cfg.train_sample_size or DEFAULT_TRAIN_SAMPLE
        return pool.take(stratified_indices(pool.labels, n, [cfg.seed, 1], pool.source))
    pool = _pool(cfg, "test")
    test_idx = stratified_indices(pool.labels, cfg.test_size, cfg.seed, pool.source)
    if cfg.train_sample_size is None:
        rest = np.setdiff1d(np.arange(len(pool.labels)), test_idx)
        if len(rest) == 0 or len(np.unique(pool.labels[rest])) < 2:
            raise DataError(f"{pool.source}: no reviews of both classes left for training")
        return pool.take(rest)
    index = stratified_indices(
        pool.labels, cfg.train_sample_size, [cfg.seed, 1], pool.source, exclude=test_idx
    )
    return pool.take(index)


def _pool(cfg: SentimentConfig, split: str) -> _Pool:
    if cfg.data_source == "hf":
        return _hf_pool(split)
    if cfg.data_source == "aclimdb":
        return _aclimdb_pool(Path(cfg.data_path or ""), split)
    if cfg.data_source == "file":
        return _file_pool(Path(cfg.data_path or ""), source=f"file:{cfg.data_path}")
    return _file_pool(FIXTURE_PATH, source="fixture:reviews.jsonl")


# --- labels -----------------------------------------------------------------------------


def parse_labels(values: Sequence[Any], source: str) -> np.ndarray:
    """Map 0/1, pos/neg or positive/negative (any case) to label ids; anything else is an error."""
    out = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        label = _label_id(value)
        if label is None:
            raise DataError(
                f"{source}: row {row}: label {value!r} is not 0/1, pos/neg or positive/negative"
            )
        out[row] = label
    return out


def _label_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value) if value in (0, 1) else None
    if isinstance(value, float | np.floating):
        return int(value) if value in (0.0, 1.0) else None  # pandas reads ints with NaNs as float
    if isinstance(value, str):
        return _LABEL_WORDS.get(value.strip().lower())
    return None


# --- file / fixture -----------------------------------------------------------------------


def _file_pool(path: Path, source: str) -> _Pool:
    frame = _read_table(path)
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {found})")
    texts = ["" if _is_missing(t) else str(t) for t in frame["text"].tolist()]
    for row, text in enumerate(texts):
        if not text.strip():
            raise DataError(f"{path}: row {row} has an empty text")
    labels = parse_labels(frame["label"].tolist(), str(path))
    ids = (
        [str(i) for i in frame["id"].tolist()]
        if "id" in frame.columns
        else [f"row-{i}" for i in range(len(texts))]
    )
    return _Pool(ids=ids, labels=labels, read=lambda idx: [texts[i] for i in idx], source=source)


def _read_table(path: Path) -> Any:
    """Read CSV/TSV/Parquet/JSON(L) with pandas; any failure is one DataError line."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[], Any]] = {
        ".csv": lambda: pd.read_csv(path, keep_default_na=False),
        ".tsv": lambda: pd.read_csv(path, sep="\t", keep_default_na=False),
        ".parquet": lambda: pd.read_parquet(path),
        ".pq": lambda: pd.read_parquet(path),
        ".jsonl": lambda: pd.read_json(path, lines=True, dtype=False),
        ".ndjson": lambda: pd.read_json(path, lines=True, dtype=False),
        ".json": lambda: pd.read_json(path, dtype=False),
    }
    if suffix not in readers:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .parquet or .jsonl"
        )
    try:
        frame = readers[suffix]()
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path}: {reason}") from None
    if len(frame) == 0:
        raise DataError(f"{path}: no rows")
    return frame


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


# --- aclImdb folder -----------------------------------------------------------------------


def _aclimdb_pool(path: Path, split: str) -> _Pool:
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    files: list[Path] = []
    labels: list[int] = []
    for label_id, sub in enumerate(("neg", "pos")):
        folder = root / split / sub
        if not folder.is_dir():
            raise DataError(
                f"{path} is not an aclImdb folder: {folder} is missing "
                f"(expected {split}/pos/*.txt and {split}/neg/*.txt)"
            )
        found = sorted(folder.glob("*.txt"))
        files += found
        labels += [label_id] * len(found)
    ids = [str(f.relative_to(root)) for f in files]
    return _Pool(
        ids=ids,
        labels=np.asarray(labels, dtype=np.int64),
        read=lambda idx: [_read_text(files[i]) for i in idx],
        source=f"aclimdb:{root}/{split}",
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


# --- Hugging Face (the paper's source) ----------------------------------------------------


def _hf_pool(split: str) -> _Pool:
    try:
        from datasets import load_dataset

        dataset = load_dataset(HF_DATASET, split=split)
    except Exception as exc:  # offline, missing cache, hub errors: all mean "not available"
        raise DataError(
            f"IMDB ({HF_DATASET}, {split} split) is not available ({type(exc).__name__}): "
            "download it once with network access (it stays in the Hugging Face cache, "
            "usable with HF_DATASETS_OFFLINE=1), or pass --data aclimdb --data-path aclImdb/, "
            "--data file --data-path reviews.csv, or use --smoke"
        ) from None
    labels = np.asarray(dataset["label"], dtype=np.int64)
    return _Pool(
        ids=[f"imdb-{split}-{i}" for i in range(len(labels))],
        labels=labels,
        read=lambda idx: list(dataset.select(idx.tolist())["text"]),
        source=f"hf:{HF_DATASET}/{split}",
    )
