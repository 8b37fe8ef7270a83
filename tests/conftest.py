"""Shared fixtures: the shared copy of makemore's names.txt, when it is beside the repo;
a garbage collector that leaves the test process's own objects alone. The `heavy`
tests run first, so that two workers finish together. Plain helpers (no fixtures)
are in `tests/helpers.py`."""

import gc
import os
import subprocess
from contextlib import contextmanager

import pytest
from helpers import SHARED_NAMES, mount_tmpfs


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


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write to: chmod for users, a read-only tmpfs for root
    (root ignores permission bits)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount_tmpfs(folder, "ro,size=64k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A 16 KiB file system (root only): a checkpoint (~80 KB) does not fit."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tiny tmpfs, which needs root")
    folder = tmp_path / "full"
    folder.mkdir()
    mount_tmpfs(folder, "size=16k")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
