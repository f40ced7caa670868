from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlopsbench.errors import DataError
from mlopsbench.usecases.sentiment.config import SentimentConfig
from mlopsbench.usecases.sentiment.data import (
    FIXTURE_PATH,
    Reviews,
    load_test_reviews,
    load_train_reviews,
    parse_labels,
    stratified_indices,
)


def _frame(n_pos: int = 12, n_neg: int = 9, labels: tuple[object, object] = (1, 0)) -> pd.DataFrame:
    rows = [{"text": f"great film number {i}", "label": labels[0]} for i in range(n_pos)]
    rows += [{"text": f"awful film number {i}", "label": labels[1]} for i in range(n_neg)]
    return pd.DataFrame(rows)


def _file_cfg(path: Path, **kwargs: object) -> SentimentConfig:
    return SentimentConfig(source="file", data_path=str(path), **kwargs)  # type: ignore[arg-type]


# --- the shipped fixture ---------------------------------------------------------------------


def test_fixture_is_balanced_unique_and_varied() -> None:
    rows = [json.loads(line) for line in FIXTURE_PATH.read_text().splitlines()]
    labels = [r["label"] for r in rows]
    assert labels.count("positive") >= 70 and labels.count("positive") == labels.count("negative")
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts) and len({r["id"] for r in rows}) == len(rows)
    words = {w.lower().strip(".,!?:;") for t in texts for w in t.split()}
    assert len(words) > 800  # varied wording, not a handful of templates


def test_smoke_sample_is_stratified_and_disjoint_from_training() -> None:
    cfg = SentimentConfig(smoke=True)
    test, train = load_test_reviews(cfg), load_train_reviews(cfg)
    assert len(test) == 100 and int(test.labels.sum()) == 50
    assert len(train) == 200 and int(train.labels.sum()) == 100
    assert not set(test.ids) & set(train.ids)


# --- file sources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "labels"),
    [
        (".csv", (1, 0)),
        (".tsv", ("pos", "neg")),
        (".parquet", ("positive", "negative")),
        (".jsonl", ("POSITIVE", "Negative")),
    ],
)
def test_file_formats_and_label_spellings(tmp_path: Path, suffix: str, labels: tuple) -> None:
    path = tmp_path / f"reviews{suffix}"
    frame = _frame(labels=labels)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    reviews = load_test_reviews(_file_cfg(path, sample_size=8))
    assert len(reviews) == 8 and int(reviews.labels.sum()) == 4
    for text, label in zip(reviews.texts, reviews.labels, strict=True):
        assert text.startswith("great" if label == 1 else "awful")
    assert reviews.ids[0].startswith("row-")


def test_stratification_is_exact_and_seeded(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _frame(n_pos=40, n_neg=30).to_csv(path, index=False)
    first = load_test_reviews(_file_cfg(path, sample_size=20, seed=3))
    again = load_test_reviews(_file_cfg(path, sample_size=20, seed=3))
    other = load_test_reviews(_file_cfg(path, sample_size=20, seed=4))
    assert first.ids == again.ids and first.digest == again.digest
    assert first.ids != other.ids
    assert np.bincount(first.labels).tolist() == [10, 10]


def test_stratified_indices_pure() -> None:
    labels = np.array([0] * 6 + [1] * 4)
    index = stratified_indices(labels, 6, seed=1, source="t")
    assert np.bincount(labels[index]).tolist() == [3, 3]
    assert (np.diff(index) > 0).all()  # in pool order
    kept = stratified_indices(labels, 2, seed=1, source="t", exclude=index)
    assert not set(kept) & set(index) and np.bincount(labels[kept]).tolist() == [1, 1]
    with pytest.raises(DataError, match="only 1 positive reviews available, 2 needed"):
        stratified_indices(labels, 4, seed=1, source="t", exclude=index)


def test_file_train_sample_excludes_test_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _frame(n_pos=10, n_neg=10).assign(id=[f"r{i}" for i in range(20)]).to_csv(path, index=False)
    cfg = _file_cfg(path, sample_size=6)
    test, train = load_test_reviews(cfg), load_train_reviews(cfg)
    assert len(train) == 14 and not set(test.ids) & set(train.ids)
    assert test.ids[0].startswith("r")  # the id column is used when present
    picked = load_train_reviews(_file_cfg(path, sample_size=6, train_sample_size=8))
    assert np.bincount(picked.labels).tolist() == [4, 4] and not set(test.ids) & set(picked.ids)


# --- bad input: one-line DataErrors ------------------------------------------------------------


def _expect_data_error(cfg: SentimentConfig, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment) as info:
        load_test_reviews(cfg)
    assert "\n" not in str(info.value)


def test_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    pd.DataFrame({"review": ["good"], "sentiment": [1]}).to_csv(path, index=False)
    _expect_data_error(_file_cfg(path, sample_size=2), r"missing column\(s\) text, label")


def test_bad_labels(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _frame(labels=("pos", "meh")).to_csv(path, index=False)
    _expect_data_error(_file_cfg(path, sample_size=2), "label 'meh' is not 0/1")
    with pytest.raises(DataError, match="label 2"):
        parse_labels([0, 1, 2], "x")
    assert parse_labels([0, 1.0, True, " Pos "], "x").tolist() == [0, 1, 1, 1]


def test_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    frame = _frame()
    frame.loc[3, "text"] = "   "
    frame.to_csv(path, index=False)
    _expect_data_error(_file_cfg(path, sample_size=2), "row 3 has an empty text")


def test_too_few_rows_of_a_class(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    _frame(n_pos=12, n_neg=3).to_csv(path, index=False)
    _expect_data_error(_file_cfg(path, sample_size=10), "only 3 negative reviews available, 5")


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "r.parquet"
    corrupt.write_bytes(b"this is not parquet at all")
    _expect_data_error(_file_cfg(corrupt, sample_size=2), "cannot read")
    _expect_data_error(_file_cfg(tmp_path / "nope.csv", sample_size=2), "data file not found")
    odd = tmp_path / "r.xlsx"
    odd.write_text("x")
    _expect_data_error(_file_cfg(odd, sample_size=2), "unsupported file type")
    empty = tmp_path / "e.csv"
    empty.write_text("text,label\n")
    _expect_data_error(_file_cfg(empty, sample_size=2), "no rows")


# --- aclImdb folder ------------------------------------------------------------------------------


def _acl(root: Path, split: str = "test", n: int = 6) -> None:
    for sub, word in (("pos", "loved"), ("neg", "hated")):
        folder = root / "aclImdb" / split / sub
        folder.mkdir(parents=True)
        for i in range(n):
            (folder / f"{i}_{7 if sub == 'pos' else 2}.txt").write_text(f"I {word} it. <br />#{i}")


def test_aclimdb_folder_layout(tmp_path: Path) -> None:
    _acl(tmp_path)
    _acl(tmp_path, split="train", n=4)
    for path in (tmp_path, tmp_path / "aclImdb"):  # the folder itself or its parent
        cfg = SentimentConfig(
            source="aclimdb", data_path=str(path), sample_size=6, train_sample_size=4
        )
        test = load_test_reviews(cfg)
        assert len(test) == 6 and int(test.labels.sum()) == 3
        assert all(i.startswith("test/") for i in test.ids)
        for text, label in zip(test.texts, test.labels, strict=True):
            assert ("loved" in text) == bool(label)
        train = load_train_reviews(cfg)
        assert all(i.startswith("train/") for i in train.ids) and len(train) == 4


def test_aclimdb_errors(tmp_path: Path) -> None:
    cfg = SentimentConfig(source="aclimdb", data_path=str(tmp_path), sample_size=2)
    _expect_data_error(cfg, "is not an aclImdb folder")
    _acl(tmp_path, n=2)
    (tmp_path / "aclImdb" / "test" / "neg" / "0_2.txt").write_text(" ")
    _expect_data_error(
        SentimentConfig(source="aclimdb", data_path=str(tmp_path), sample_size=4), "empty text"
    )


# --- Hugging Face (offline in tests) -------------------------------------------------------------


def test_hf_offline_says_how_to_provide_the_data() -> None:
    with pytest.raises(DataError) as info:
        load_test_reviews(SentimentConfig(source="hf"))
    message = str(info.value)
    assert "stanfordnlp/imdb" in message and "--data-path" in message and "--smoke" in message
    assert "\n" not in message


# --- hand-over file ------------------------------------------------------------------------------


def test_reviews_round_trip(tmp_path: Path) -> None:
    reviews = Reviews(
        ids=("a", "b"),
        texts=('fine "quoted" film', "bad\nfilm"),
        labels=np.array([1, 0]),
        source="test",
    )
    loaded = Reviews.load(reviews.save(tmp_path / "r.jsonl"))
    assert loaded.ids == reviews.ids and loaded.texts == reviews.texts
    assert loaded.labels.tolist() == [1, 0] and loaded.digest == reviews.digest
    assert reviews.summary()["n_test"] == 2
    assert not list(tmp_path.glob(".*tmp"))
