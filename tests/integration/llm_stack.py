"""A real LLM emulator that counts what reached it, and row look-ups by trace id, for the
gateway's cache and prompt-route tests."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite.emulators.llm import Emulator, Request, serve
from suite.ingest import ingest_spool
from suite.store import Store
from tests.procs import AIOPS, Proc

# Start-up takes seconds on an idle machine and much longer on a loaded CI box.
GATEWAY_START_TIMEOUT_S = 120.0


class CountingEmulator(Emulator):
    """The project's LLM emulator (a real HTTP server), remembering every request body."""

    def __init__(self, force_status: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.force_status = force_status  # answer every request with this error status
        self.seen: list[tuple[str, bytes]] = []

    async def dispatch(self, req: Request, writer: asyncio.StreamWriter) -> None:
        self.seen.append((req.path, req.body))
        if self.force_status is not None:
            req.headers["x-emulator-status"] = str(self.force_status)
        await super().dispatch(req, writer)

    def count(self, marker: str) -> int:
        """Requests whose body contains `marker`."""
        needle = marker.encode()
        return sum(1 for _path, body in self.seen if needle in body)


def start_counting_emulator(
    force_status: int | None = None,
) -> tuple[CountingEmulator, str, Callable[[], None]]:
    """(emulator, base URL, stop) with the server on a loopback port in a daemon thread."""
    emulator = CountingEmulator(force_status)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    url: list[str] = []

    def on_ready(u: str) -> None:
        url.append(u)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(emulator, "127.0.0.1", 0, on_ready, stop))
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=run, name="counting-llm-emulator", daemon=True)
    thread.start()
    ready.wait(10)
    assert url, "the LLM emulator did not start"

    def stop_it() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)

    return emulator, url[0], stop_it


def new_trace() -> tuple[str, dict[str, str]]:
    """A trace id and the traceparent header that puts it on the gateway's rows."""
    trace = uuid.uuid4().hex
    return trace, {"traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01"}


def rows_of_trace(home: Path, trace: str, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The `requests` rows with this trace id (oldest first), once `n` have been recorded:
    the gateway's spool is loaded into the store in-process, as the ingest job would."""
    store = Store(home)
    store.ensure_schema()
    deadline = time.monotonic() + timeout
    while True:
        ingest_spool(store)
        rows = store.query(
            "SELECT * FROM requests WHERE trace_id = ? ORDER BY ts", [trace]
        ).to_dicts()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def start_gateway_patiently(home: Path, config: Path) -> tuple[Proc, str]:
    """`aiops gateway` on a free loopback port, as tests.procs.start_gateway, but willing to
    wait for it on a busy machine; (process, base URL)."""
    p = Proc([AIOPS, "gateway", "--home", str(home), "--config", str(config), "--listen-port", "0"])
    try:
        m = p.wait_for(r"aiops gateway listening on (http://\S+)", GATEWAY_START_TIMEOUT_S)
    except AssertionError:
        p.stop()
        raise
    return p, m.group(1)
