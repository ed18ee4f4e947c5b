"""Shared pytest configuration: the default run is the fast suite (``--slow``: the slow fits only),
flushed denormals, a one-thread fixture, and a per-test folder for the remembered settings."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="run only the tests marked slow (the long fits); without it they are deselected",
    )


def pytest_collection_modifyitems(config, items):
    """Keep the fast tests, or with ``--slow`` the slow ones. A ``-m`` expression that names the
    ``slow`` marker itself (``-m slow``, ``-m "slow or gui"``) decides alone; any other ``-m`` applies
    on top of this choice."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    want_slow = config.getoption("--slow")
    keep, drop = [], []
    for item in items:
        (keep if (item.get_closest_marker("slow") is not None) == want_slow else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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


@pytest.fixture
def display():
    """A GUI test's display: fail (not skip) without one, with the command that provides it."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        pytest.fail("no display: run GUI tests under a (virtual) X display, e.g. `bash scripts/test.sh`")


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path_factory, monkeypatch):
    """The fit widget's remembered settings live in a fresh folder per test, never in the user's
    configuration folder (a test's settings must not leak into the next test or the user's napari)."""
    monkeypatch.setenv("NAPARI_MOLLIFIER_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
