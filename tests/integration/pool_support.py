"""Helpers for the upstream-pool and fallback tests: an upstream that resets every
connection, emulator request counters, and reading rows while the gateway runs."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from suite.ingest import ingest_spool
from suite.store import Store


class ResettingUpstream:
    """Accepts TCP connections and resets them at once (RST, no answer); counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def served_count(url: str) -> int:
    """Requests an emulator (REST or LLM) has answered so far."""
    return int(httpx.get(f"{url}/_emulator/stats", timeout=5).json()["requests"])


def set_fault(url: str, **params: object) -> None:
    r = httpx.get(f"{url}/_emulator/fault", params=params, timeout=5)  # type: ignore[arg-type]
    r.raise_for_status()


def rows(
    home: Path, sql: str, params: list[Any], expect: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Load the spool the gateway has written so far into the store and run `sql`, until it
    returns `expect` rows (the gateway flushes every 0.2 s in these tests)."""
    store = Store(home)
    store.ensure_schema()
    deadline = time.monotonic() + timeout
    while True:
        ingest_spool(store)
        found = store.query(sql, params).to_dicts()
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
