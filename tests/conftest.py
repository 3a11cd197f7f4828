"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

# The four MNIST .gz files, kept beside the checkout (shared/data/mnist) so that CI never downloads.
REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The folder with the real MNIST files; the test is skipped where the folder is absent."""
    if not REAL_MNIST.is_dir():
        pytest.skip(f"no real MNIST at {REAL_MNIST} (shared/data/mnist beside the checkout)")
    return REAL_MNIST
