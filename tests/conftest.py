"""Shared fixtures: the shared copy of makemore's names.txt, when it is beside the repo;
a garbage collector that leaves the test process's own objects alone. The `heavy`
tests run first, so that two workers finish together. Plain helpers (no fixtures)
are in `tests/helpers.py`."""

import gc
from contextlib import contextmanager

import pytest
from helpers import SHARED_NAMES


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "heavy: a long test of the fast tier; the workers start on these first"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The `heavy` tests first: xdist hands tests out in this order, so no worker is
    left with one of them at the end while the other has nothing to do."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(scope="session")
def names_path():
    if not SHARED_NAMES.is_file():
        pytest.skip(f"makemore's names.txt is not at {SHARED_NAMES} (CI has it)")
    return SHARED_NAMES


@pytest.fixture(scope="session")
def names_docs(names_path):
    from microgpt.data import read_names

    return read_names(names_path)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No MICROGPT_DATA, an empty cache and an empty working directory."""
    monkeypatch.delenv("MICROGPT_DATA", raising=False)
    monkeypatch.delenv("MICROGPT_DATA_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@contextmanager
def collector_frozen():
    """The cyclic collector ignores every object alive now, and runs less often.

    For code that trains a scalar stage: it makes some 10^5 graph nodes a step (no
    cycles: reference counting frees them), and every collection they trigger walks the
    tracked objects; in a test process that is also all that pytest, hypothesis and
    torch have loaded, which doubles the time of a step. What the stage computes is the
    same; only the collector works less.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@pytest.fixture
def frozen_gc():
    """The test runs inside `collector_frozen`."""
    with collector_frozen():
        yield


@pytest.fixture(scope="session")
def quiet_gc():
    """`collector_frozen` itself, for a fixture wider than one test (not `frozen_gc`)."""
    return collector_frozen
