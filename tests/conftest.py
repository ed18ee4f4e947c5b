"""Shared pytest configuration."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _flush_denormals():
    """Flush denormal floats to zero: the bump's far tail otherwise slows CPU kernels badly."""
    torch.set_flush_denormal(True)
    yield
