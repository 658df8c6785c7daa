from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.helpers import stop_and_close
from tests.procs import Proc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Like tests/conftest.py's `procs`, but also closes each process's output pipe."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        stop_and_close(p)
