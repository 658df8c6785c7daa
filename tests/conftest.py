from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Proc, start_emulator
from tests.receivers import smtp, webhook  # noqa: F401  (fixtures for every test)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's own ~/.aiops and AIOPS_HOME out of every test."""
    home = tmp_path / "home"
    monkeypatch.setenv("AIOPS_HOME", str(home))
    # A user directory that exists (Jupyter and IPython want one), outside tmp_path,
    # whose contents some tests check.
    user = tmp_path.parent / f"{tmp_path.name}-user"
    user.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(user))
    return home


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def emulator() -> Iterator[str]:
    """A running upstream emulator; yields its base URL."""
    proc, url = start_emulator()
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Register processes here to have them stopped at the end of the test."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop()


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
