"""Shared pytest configuration."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _flush_denormals():
    """Flush denormal floats to zero: the bump's far tail otherwise slows CPU kernels badly."""
    torch.set_flush_denormal(True)
    yield


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test, like each dask worker (dask's nanny sets
    OMP_NUM_THREADS=1), so that in-process and worker results can be compared exactly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(before)
