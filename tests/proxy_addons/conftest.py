"""Addon unit tests: mitmproxy's `taddons.context` makes a new event loop when a test has
none running and never closes it; the loop's ResourceWarning then surfaces, at garbage
collection, in whichever test runs next. Close it when the context ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy.test import taddons


@pytest.fixture(autouse=True)
def _close_taddons_event_loops(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_exit = taddons.context.__exit__

    def exit_and_close(self: taddons.context, *exc: Any) -> Any:
        result = real_exit(self, *exc)
        loop = self.master.event_loop
        if not loop.is_running() and not loop.is_closed():
            loop.close()
        return result

    monkeypatch.setattr(taddons.context, "__exit__", exit_and_close)
    yield
