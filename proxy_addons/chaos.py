"""Applies active chaos drills (`aiops chaos start`) to the routes they name: added
latency (an async sleep, other calls keep flowing) and gateway-made errors.

A background thread watches `<home>/run/chaos.json` (mtime, once a second) and swaps in
the parsed drills; the request hook only does a dict lookup. Never opens the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable

from mitmproxy import ctx, http

from suite.chaos import Drill, chaos_path, read_drills
from suite.gateway_errors import META_ERROR, gateway_error_response
from suite.home import Home, resolve_home

log = logging.getLogger("aiops.chaos")
META_ROUTE = "aiops_route"
POLL_SECONDS = 1.0
CHAOS_HEADER = "X-AIOps-Chaos"
META_DRILL = "aiops_chaos_drill"


def chaos_tag(drill: Drill, error: bool) -> str:
    """The `chaos` column: what this call got, e.g. 'latency:200ms,error:503'."""
    tags = []
    if drill.latency_ms > 0:
        tags.append(f"latency:{drill.latency_ms:g}ms")
    if error:
        tags.append(f"error:{drill.status}")
    return ",".join(tags)


def chaos_response(drill: Drill) -> http.Response:
    return gateway_error_response(
        drill.status,
        "chaos",
        f"chaos drill {drill.id} on route {drill.route!r}: injected error",
        route=drill.route,
        drill=drill.id,
    )


class ChaosDrills:
    def __init__(self, home: Home | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self.home = home
        self.poll_seconds = poll_seconds
        self.drills: dict[str, Drill] = {}  # route -> drill; replaced whole, never mutated
        # Errors are spread evenly: each call adds the rate, an error when it reaches 1,
        # so over n calls exactly floor(n * rate) fail (per gateway process).
        self._credit: dict[str, float] = {}
        self._seen: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def running(self) -> None:
        if self.home is None:
            self.home = resolve_home(getattr(ctx.options, "aiops_home", "") or None)
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="aiops-chaos", daemon=True)
        self._thread.start()

    def done(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # never let the watcher die
                log.exception("chaos: refresh failed")

    def refresh(self) -> None:
        """Re-read the drill file if it changed since the last look."""
        assert self.home is not None
        path = chaos_path(self.home)
        try:
            st = os.stat(path)
            seen: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        if seen == self._seen:
            return
        self._seen = seen
        drills = {d.route: d for d in read_drills(path)} if seen else {}
        if drills.keys() != self.drills.keys() or any(
            drills[r].id != self.drills[r].id for r in drills
        ):
            log.info(
                "chaos: active drills: %s",
                ", ".join(f"{d.route} [{d.describe()}]" for d in drills.values()) or "none",
            )
        self.drills = drills

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not self.drills:
            return None
        drill = self.drills.get(flow.metadata.get(META_ROUTE))  # type: ignore[arg-type]
        if drill is None or not drill.active(time.time()):
            return None
        error = False
        if drill.error_rate > 0:
            credit = self._credit.get(drill.id, 0.0) + drill.error_rate
            error = credit >= 1.0 - 1e-9
            self._credit[drill.id] = credit - 1.0 if error else credit
        flow.metadata[META_DRILL] = drill.id
        tag = chaos_tag(drill, error)
        if tag:  # the row's `chaos` column: only calls a fault was applied to
            flow.metadata.setdefault("aiops_fields", {})["chaos"] = tag
        if drill.latency_ms > 0:
            return self._delay(flow, drill, error)
        if error:
            self._fail(flow, drill)
        return None

    async def _delay(self, flow: http.HTTPFlow, drill: Drill, error: bool) -> None:
        await asyncio.sleep(drill.latency_ms / 1000.0)
        if error and not flow.response and not flow.error:
            self._fail(flow, drill)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Tells the caller its call ran under a drill, and which fault it got if any.
        drill = flow.metadata.get(META_DRILL)
        if drill and flow.response is not None:
            tag = flow.metadata.get("aiops_fields", {}).get("chaos") or "none"
            flow.response.headers[CHAOS_HEADER] = f"{drill}; {tag}"

    @staticmethod
    def _fail(flow: http.HTTPFlow, drill: Drill) -> None:
        flow.metadata[META_ERROR] = "chaos"
        flow.response = chaos_response(drill)


addons = [ChaosDrills()]
