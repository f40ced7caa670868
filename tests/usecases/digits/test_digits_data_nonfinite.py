"""Float images or labels with NaN/inf are refused with one line naming the file and the count.

NaN defeats a min/max range check (every comparison with NaN is False), so a NaN pixel used to
pass validation and be cast to 0 silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlopsbench.errors import DataError
from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.digits.data import as_uint8_images, load_digits_data
from mlopsbench.usecases.digits.evaluate import as_image_batch


def write_npz(path: Path, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28)).astype(np.float32),
        "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 256, (10, 28, 28)).astype(np.float64),
        "y_test": np.arange(10) % 10,
        **override,
    }
    np.savez(path, **arrays)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DataError) as exc:
        load_digits_data(DigitsDataConfig(source="npz", path=str(path)))
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_one_nan_pixel_is_refused_naming_the_file(tmp_path: Path) -> None:
    images = np.full((20, 28, 28), 128.0, np.float32)
    images[3, 4, 5] = np.nan
    path = write_npz(tmp_path / "nan.npz", x_train=images)
    message = load_error(path)
    assert str(path) in message
    assert "train images contain 1 non-finite value(s) (NaN or inf) of 15680" in message


def test_inf_pixels_in_the_test_split_are_counted(tmp_path: Path) -> None:
    images = np.full((10, 28, 28), 7.0)
    images[0, :3, 0] = [np.inf, -np.inf, np.nan]
    message = load_error(write_npz(tmp_path / "inf.npz", x_test=images))
    assert "test images contain 3 non-finite value(s)" in message


def test_nan_labels_are_refused(tmp_path: Path) -> None:
    labels = (np.arange(20) % 10).astype(float)
    labels[[2, 5]] = np.nan
    message = load_error(write_npz(tmp_path / "labels.npz", y_train=labels))
    assert "train labels contain 2 non-finite value(s)" in message


def test_finite_float_pixels_are_still_accepted(tmp_path: Path) -> None:
    data = load_digits_data(
        DigitsDataConfig(source="npz", path=str(write_npz(tmp_path / "ok.npz")))
    )
    assert data.train_images.dtype == np.uint8 and data.test_images.dtype == np.uint8


def test_served_images_with_nan_are_refused() -> None:
    """The same check guards what a served model is asked to predict."""
    images = np.zeros((2, 784), np.float32)
    images[1, 10] = np.nan
    with pytest.raises(DataError, match="input images contain 1 non-finite value"):
        as_image_batch(images)
    with pytest.raises(DataError, match=r"^train images contain 1 non-finite"):
        as_uint8_images(images.reshape(2, 28, 28), "train")  # no origin: no prefix
