"""Loaders on files the tests generate (never the network), and one-line errors on bad input."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from mlopsbench.errors import ConfigError, DataError, ToolUnavailableError
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.digits.data import (
    IDX_FILES,
    DigitsData,
    load_digits_data,
    read_idx,
    upscale_to_mnist,
    write_idx,
)

N_TRAIN, N_TEST = 80, 20  # 100 images in all


def random_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 images and labels cycling 0..9 (every class present)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10


def make_split(seed: int = 0) -> DigitsData:
    images, labels = random_digits(N_TRAIN + N_TEST, seed)
    return DigitsData(
        images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:], "generated"
    )


def assert_same_arrays(loaded: DigitsData, expected: DigitsData) -> None:
    np.testing.assert_array_equal(loaded.train_images, expected.train_images)
    np.testing.assert_array_equal(loaded.train_labels, expected.train_labels)
    np.testing.assert_array_equal(loaded.test_images, expected.test_images)
    np.testing.assert_array_equal(loaded.test_labels, expected.test_labels)
    assert loaded.train_images.dtype == np.uint8
    assert loaded.train_labels.dtype == np.int64


def write_idx_folder(folder: Path, data: DigitsData, gz: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": data.train_images,
        "train_labels": data.train_labels,
        "test_images": data.test_images,
        "test_labels": data.test_labels,
    }
    for key, stem in IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
    return folder


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


# --- sklearn ---------------------------------------------------------------------------------


def test_sklearn_default_is_mnist_shaped_stratified_and_deterministic(bundled: DigitsData) -> None:
    assert bundled.train_images.shape == (1437, 28, 28)
    assert bundled.test_images.shape == (360, 28, 28)
    assert bundled.train_images.dtype == np.uint8
    assert bundled.train_images.max() == 255
    # MNIST layout: the digit sits in the 20x20 centre, the 4-pixel border is black.
    assert bundled.train_images[:, :4].max() == 0 and bundled.train_images[:, 24:].max() == 0
    # Stratified: every class keeps its share of the test split (about 36 of 360 each).
    counts = np.bincount(bundled.test_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load_digits_data(DigitsDataConfig())
    assert again.digest == bundled.digest
    other_split = load_digits_data(DigitsDataConfig(split_seed=7))
    assert other_split.digest != bundled.digest


def test_upscale_maps_0_16_to_0_255() -> None:
    eight = np.zeros((2, 8, 8))
    eight[0] = 16
    out = upscale_to_mnist(eight)
    assert out.shape == (2, 28, 28) and out.dtype == np.uint8
    assert out[0, 4:24, 4:24].min() == 255 and out[0, :4].max() == 0
    assert out[1].max() == 0


def test_limit_train_keeps_a_stratified_subset(small: DigitsData, bundled: DigitsData) -> None:
    assert small.train_labels.shape == (300,)
    assert np.bincount(small.train_labels, minlength=10).min() >= 28
    np.testing.assert_array_equal(small.test_labels, bundled.test_labels)
    assert small.source.endswith("[train<=300]")


# --- npz -------------------------------------------------------------------------------------


def test_npz_round_trip_and_digest(tmp_path: Path) -> None:
    data = make_split()
    path = data.save(tmp_path / "data.npz")
    loaded = load_digits_data(DigitsDataConfig(source="npz", path=str(path)))
    assert_same_arrays(loaded, data)
    assert loaded.source == "generated"  # save() keeps the origin for lineage
    assert loaded.digest == data.digest
    assert loaded.summary() == {
        "source": "generated",
        "digest": data.digest,
        "n_train": N_TRAIN,
        "n_test": N_TEST,
    }


def test_keras_style_npz_with_float_pixels_is_accepted(tmp_path: Path) -> None:
    data = make_split()
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=data.train_images.astype(np.float32),
        y_train=data.train_labels.astype(np.uint8),
        x_test=data.test_images.astype(np.float64),
        y_test=data.test_labels.astype(np.float32),
    )
    loaded = load_digits_data(DigitsDataConfig(source="npz", path=str(path)))
    assert_same_arrays(loaded, data)
    assert loaded.source == f"npz:{path}"


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"x_train": 1}, "lacks arrays"),
        ({"x_train": np.zeros((3, 28, 27), np.uint8)}, "shape (N, 28, 28)"),
        ({"x_train": np.full((3, 28, 28), 0.5, np.float32)}, "not floats in [0, 1]"),
        ({"x_train": np.full((3, 28, 28), 300.0)}, "0..255"),
        ({"y_train": np.array([1, 2])}, "does not match"),
        ({"y_train": np.array([1, 2, 10])}, "digits 0..9"),
        ({"y_train": np.array([0.5, 1, 2])}, "integer"),
    ],
)
def test_bad_npz_contents_are_one_line_data_errors(
    tmp_path: Path, arrays: dict[str, object], expected: str
) -> None:
    good = {
        "x_train": np.zeros((3, 28, 28), np.uint8),
        "y_train": np.array([0, 1, 2]),
        "x_test": np.zeros((2, 28, 28), np.uint8),
        "y_test": np.array([3, 4]),
    }
    good.update(arrays)  # type: ignore[arg-type]
    if "lacks arrays" in expected:
        del good["y_test"]
    path = tmp_path / "bad.npz"
    np.savez(path, **good)
    with pytest.raises(DataError) as exc:
        load_digits_data(DigitsDataConfig(source="npz", path=str(path)))
    assert expected in one_line(exc)


def test_missing_and_corrupt_npz(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="npz file not found") as exc:
        load_digits_data(DigitsDataConfig(source="npz", path=str(tmp_path / "nope.npz")))
    one_line(exc)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(DataError, match="corrupt npz file") as exc:
        load_digits_data(DigitsDataConfig(source="npz", path=str(corrupt)))
    one_line(exc)


def test_empty_split_is_rejected() -> None:
    images, labels = random_digits(10)
    with pytest.raises(DataError, match="test split is empty"):
        DigitsData(images, labels, images[:0], labels[:0], "empty")


# --- IDX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_idx_folder_round_trip(tmp_path: Path, gz: bool) -> None:
    data = make_split()
    folder = write_idx_folder(tmp_path / "mnist", data, gz)
    loaded = load_digits_data(DigitsDataConfig(source="idx", path=str(folder)))
    assert_same_arrays(loaded, data)
    assert loaded.source == f"idx:{folder}"


def test_idx_header_is_mnists(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, np.zeros((2, 28, 28), np.uint8))
    raw = path.read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"  # magic 2051, as in train-images-idx3-ubyte
    assert raw[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    assert read_idx(path).shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x00\x00", "shorter than its 4-byte header"),
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "bad magic"),
        (b"\x00\x00\x0d\x01" + b"\x00" * 8, "bad magic"),  # float IDX: not MNIST's bytes
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "promises 5 bytes, file has 2"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read IDX file"),
    ],
)
def test_corrupt_idx_files(tmp_path: Path, payload: bytes, expected: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(DataError) as exc:
        read_idx(path)
    assert expected in one_line(exc)


def test_truncated_gzip_idx(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03")[:-6])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(path)


def test_idx_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="IDX data folder not found"):
        load_digits_data(DigitsDataConfig(source="idx", path=str(tmp_path / "missing")))
    folder = write_idx_folder(tmp_path / "partial", make_split(), gz=False)
    (folder / IDX_FILES["test_labels"]).unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_digits_data(DigitsDataConfig(source="idx", path=str(folder)))
    # Labels that do not match the images (a truncated download, a wrong file).
    write_idx(folder / IDX_FILES["test_labels"], np.arange(7, dtype=np.uint8))
    with pytest.raises(DataError, match="does not match 20 images"):
        load_digits_data(DigitsDataConfig(source="idx", path=str(folder)))
    # Images that are not 28x28.
    write_idx(folder / IDX_FILES["test_images"], np.zeros((7, 14, 14), np.uint8))
    with pytest.raises(DataError, match=r"shape \(N, 28, 28\)"):
        load_digits_data(DigitsDataConfig(source="idx", path=str(folder)))
    write_idx(folder / IDX_FILES["test_images"], np.zeros((7, 784), np.uint8))
    with pytest.raises(DataError, match="must be 3-D"):
        load_digits_data(DigitsDataConfig(source="idx", path=str(folder)))


# --- Hugging Face (save_to_disk folders; the hub itself is offline in tests) ------------------


def _hf_dataset(images: np.ndarray, labels: np.ndarray):  # type: ignore[no-untyped-def]
    from datasets import ClassLabel, Dataset, Features, Image

    features = Features({"image": Image(), "label": ClassLabel(num_classes=10)})
    return Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features)


def test_hf_save_to_disk_dataset_dict(tmp_path: Path) -> None:
    from datasets import DatasetDict

    data = make_split()
    folder = tmp_path / "mnist-hf"
    DatasetDict(
        {
            "train": _hf_dataset(data.train_images, data.train_labels),
            "test": _hf_dataset(data.test_images, data.test_labels),
        }
    ).save_to_disk(str(folder))
    loaded = load_digits_data(DigitsDataConfig(source="hf", path=str(folder)))
    assert_same_arrays(loaded, data)
    assert loaded.source == f"hf-disk:{folder}"


def test_hf_single_dataset_is_split_stratified(tmp_path: Path) -> None:
    images, labels = random_digits(100)
    folder = tmp_path / "one-split"
    _hf_dataset(images, labels).save_to_disk(str(folder))
    loaded = load_digits_data(DigitsDataConfig(source="hf", path=str(folder)))
    assert loaded.train_labels.shape == (80,) and loaded.test_labels.shape == (20,)
    assert np.bincount(loaded.test_labels, minlength=10).tolist() == [2] * 10


def test_hf_dataset_without_a_test_split(tmp_path: Path) -> None:
    from datasets import DatasetDict

    images, labels = random_digits(20)
    folder = tmp_path / "train-only"
    DatasetDict({"train": _hf_dataset(images, labels)}).save_to_disk(str(folder))
    with pytest.raises(DataError, match="lacks split"):
        load_digits_data(DigitsDataConfig(source="hf", path=str(folder)))


def test_hf_missing_folder_and_offline_hub(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Hugging Face dataset folder not found"):
        load_digits_data(DigitsDataConfig(source="hf", path=str(tmp_path / "nope")))
    # Tests run with HF_DATASETS_OFFLINE=1 (tests/conftest.py): the hub is never contacted.
    with pytest.raises(DataError) as exc:
        load_digits_data(DigitsDataConfig(source="hf", path=str(tmp_path)))
    message = one_line(exc)
    assert "ylecun/mnist" in message and "save_to_disk" in message and "offline" in message


# --- torchvision and configuration errors ----------------------------------------------------


def test_torchvision_missing_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails, as on these machines
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ToolUnavailableError) as exc:
        load_digits_data(DigitsDataConfig(source="torchvision"))
    assert "optional extra" in one_line(exc)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"source": "kaggle"}, "unknown data source 'kaggle'"),
        ({"source": "idx"}, "needs a path"),
        ({"source": "npz", "path": ""}, "needs a path"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"limit_train": 3}, "limit_train"),
    ],
)
def test_bad_data_config(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        DigitsDataConfig(**kwargs)  # type: ignore[arg-type]
    assert expected in one_line(exc)
