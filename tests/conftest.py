"""Shared fixtures: the shared copy of makemore's names.txt, when it is beside the repo."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_NAMES = ROOT.parent / "shared" / "data" / "names.txt"  # the root conftest exports it


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
