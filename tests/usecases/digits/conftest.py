"""Fixtures for the digits core tests: the bundled data once per session, small generated sets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlopsbench.usecases.digits.config import DigitsDataConfig
from mlopsbench.usecases.digits.data import DigitsData, load_digits_data


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Train on one thread: with the 2 cores shared, OpenMP's spinning threads run ~10x slower.

    The tests check behaviour (determinism, accuracy), not speed, so the thread count is free.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bundled() -> DigitsData:
    """scikit-learn's bundled digits, upscaled and split (1,437 train / 360 test)."""
    return load_digits_data(DigitsDataConfig())


@pytest.fixture(scope="session")
def small() -> DigitsData:
    """300 stratified training images of the bundled set: enough to learn, quick to train."""
    return load_digits_data(DigitsDataConfig(limit_train=300))
