"""Records every flow the gateway sees as one row for the `requests` table.

Hooks only build a tuple and append it to the spool writer; the writer's thread does
the Parquet I/O. Authorization, cookies and secret query values are never recorded.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from mitmproxy import ctx, http

from suite.gateway_errors import META_ERROR, META_ERROR_BODY, META_ERROR_DETAIL, META_HEADERS_SENT
from suite.home import resolve_home
from suite.schema import COLUMN_INDEX, REQUEST_COLUMNS
from suite.spool import SpoolWriter

log = logging.getLogger("aiops.capture")

META_STREAM_COUNTER = "aiops_stream_counter"
META_REQUEST_ID = "aiops_request_id"
# Callables that other addons (LLM, MCP) leave on a flow; the spool writer's thread calls
# them and merges the column values they return, so parsing never runs on the proxy loop.
META_DEFERRED = "aiops_deferred"
# Other addons (LLM, MCP, keys) put column values here; capture merges them in.
META_FIELDS = "aiops_fields"
# Set by an addon that rewrites a whole answer (prompt routes): keep the body buffered.
META_HOLD_RESPONSE = "aiops_hold_response"
# Responses without a length, or bigger than this, are streamed to the client (and
# counted on the way) instead of being held in memory.
STREAM_THRESHOLD_BYTES = 1 << 20
SECRET_QUERY_KEYS = (
    "key", "token", "secret", "password", "passwd", "pwd", "auth", "signature", "sig",
    "session", "credential", "jwt", "code", "access", "private",
)  # fmt: skip
REDACTED = "REDACTED"
N_COLUMNS = len(REQUEST_COLUMNS)
# Columns after the first 34 are filled by other addons through META_FIELDS.
_LATER_COLUMNS: tuple[None, ...] = (None,) * (N_COLUMNS - 34)


def redact_query(query: str) -> str:
    """The query string with values of secret-looking parameters replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    out = [(k, REDACTED if any(s in k.lower() for s in SECRET_QUERY_KEYS) else v) for k, v in pairs]
    return urlencode(out, safe="/:,")


def parse_traceparent(value: str | None) -> tuple[str | None, str | None]:
    """(trace_id, parent_span_id) from a W3C traceparent header, or (None, None)."""
    if not value:
        return None, None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None, None
    trace, span = parts[1].lower(), parts[2].lower()
    if trace == "0" * 32 or span == "0" * 16:
        return None, None
    try:
        int(trace, 16), int(span, 16)
    except ValueError:
        return None, None
    return trace, span


def classify_flow_error(flow: http.HTTPFlow) -> tuple[str, str]:
    """(error code, detail) for a flow that ended in mitmproxy's error hook."""
    detail = flow.metadata.get(META_ERROR_DETAIL) or (flow.error.msg if flow.error else "")
    if flow.metadata.get(META_ERROR):
        return flow.metadata[META_ERROR], detail
    lowered = detail.lower()
    if "client disconnected" in lowered or "client closed" in lowered:
        return "client_disconnected", detail
    if "killed" in lowered:
        return "killed", detail
    if "timeout" in lowered or "timed out" in lowered:
        return "upstream_timeout", detail
    if "certificate" in lowered or "tls" in lowered or "ssl" in lowered:
        return "upstream_tls_error", detail
    if flow.server_conn.timestamp_tcp_setup is None:
        return "upstream_unreachable", detail
    return "upstream_reset", detail


def add_deferred(flow: http.HTTPFlow, fn: Callable[[], dict[str, Any]]) -> None:
    flow.metadata.setdefault(META_DEFERRED, []).append(fn)


class DeferredRow(NamedTuple):
    row: tuple[object, ...]
    finishers: list[Callable[[], dict[str, Any]]]


def finish_rows(items: list[object]) -> list[tuple[object, ...]]:
    """Resolve deferred rows (spool writer thread): run each finisher, merge its columns.
    A finisher that fails leaves its columns NULL; the row itself is never lost."""
    out: list[tuple[object, ...]] = []
    for item in items:
        if not isinstance(item, DeferredRow):
            out.append(item)  # type: ignore[arg-type]
            continue
        values = list(item.row)
        for fn in item.finishers:
            try:
                fields = fn()
            except Exception as e:
                log.warning(
                    "capture: could not parse details of %s: %s: %s",
                    item.row[0],
                    type(e).__name__,
                    e,
                )
                continue
            for name, value in fields.items():
                values[COLUMN_INDEX[name]] = value
        out.append(tuple(values))
    return out


class _CountingStream:
    """A response stream function that passes chunks through and counts their bytes."""

    __slots__ = ("inner", "n")

    def __init__(self, inner: object) -> None:
        self.inner = inner if callable(inner) else None
        self.n = 0

    def __call__(self, data: bytes) -> bytes | list[bytes]:
        if self.inner is None:
            self.n += len(data)
            return data
        out = self.inner(data)
        if isinstance(out, bytes | bytearray):
            self.n += len(out)
            return bytes(out)
        chunks = list(out)
        self.n += sum(len(c) for c in chunks)
        return chunks


def new_gateway_id() -> str:
    return f"g{os.getpid()}x{secrets.token_hex(3)}"


class Capture:
    def __init__(self) -> None:
        self.writer: SpoolWriter | None = None
        self.gateway_id = new_gateway_id()
        self._counter = 0

    def load(self, loader) -> None:
        loader.add_option(
            "aiops_home", str, "", "AIOps home directory (default $AIOPS_HOME or ~/.aiops)."
        )
        loader.add_option("aiops_flush_interval", float, 1.0, "Seconds between spool flushes.")
        loader.add_option("aiops_flush_rows", int, 5000, "Flush early once this many records wait.")
        loader.add_option(
            "aiops_max_backlog", int, 1_000_000,
            "Records held in memory while the spool cannot be written; older ones are dropped past this.",
        )  # fmt: skip

    def running(self) -> None:
        home = resolve_home(ctx.options.aiops_home or None).ensure()
        self.writer = SpoolWriter(
            home.spool_dir,
            self.gateway_id,
            flush_interval=ctx.options.aiops_flush_interval,
            flush_rows=ctx.options.aiops_flush_rows,
            max_backlog_rows=ctx.options.aiops_max_backlog,
            status_path=home.run_dir / f"gateway-{self.gateway_id}.json",
            prepare_rows=finish_rows,
        )
        _warm_up_parquet()
        self.writer.start()
        # Everything loaded so far lives as long as the process: keep the collector off it.
        gc.collect()
        gc.freeze()
        log.info("capture: recording to %s as gateway %s", home.spool_dir, self.gateway_id)

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            c = self.writer.counters
            log.info(
                "capture: %d records received, %d written, %d dropped",
                c.received, c.written, c.dropped,
            )  # fmt: skip
            self.writer = None

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None or (flow.metadata.get(META_HOLD_RESPONSE) and not resp.stream):
            return
        if resp.stream:
            counter = _CountingStream(resp.stream)
        else:
            length = resp.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) <= STREAM_THRESHOLD_BYTES:
                return
            counter = _CountingStream(None)
        resp.stream = counter
        flow.metadata[META_STREAM_COUNTER] = counter
        flow.metadata[META_HEADERS_SENT] = True

    def response(self, flow: http.HTTPFlow) -> None:
        self._record(flow, failed=False)

    def error(self, flow: http.HTTPFlow) -> None:
        self._record(flow, failed=True)

    def _record(self, flow: http.HTTPFlow, failed: bool) -> None:
        if self.writer is None or flow.metadata.get("aiops_recorded"):
            return
        flow.metadata["aiops_recorded"] = True
        self._counter += 1
        row = build_request_record(flow, failed, self.gateway_id, self._counter)
        flow.metadata[META_REQUEST_ID] = row[0]
        deferred = flow.metadata.get(META_DEFERRED)
        self.writer.append(DeferredRow(row, deferred) if deferred else row)


def build_request_record(
    flow: http.HTTPFlow, failed: bool, gateway_id: str, counter: int
) -> tuple[object, ...]:
    """One `requests` row (columns in `REQUEST_COLUMNS` order) for a finished flow."""
    req = flow.request
    resp = flow.response
    meta = flow.metadata
    now = time.time()
    start = req.timestamp_start
    raw_path = meta.get("aiops_client_path") or req.path
    path, _, query = raw_path.partition("?")
    counter_stream: _CountingStream | None = meta.get(META_STREAM_COUNTER)
    streamed = counter_stream is not None

    error = meta.get(META_ERROR)
    detail = None
    if failed:
        error, detail = classify_flow_error(flow)
        if meta.get(META_HEADERS_SENT) and resp is not None:
            status = resp.status_code  # headers reached the client before it broke
            response_bytes = counter_stream.n if counter_stream is not None else 0
        elif error == "client_disconnected" or error == "killed":
            status, response_bytes = None, 0
        else:
            body = meta.get(META_ERROR_BODY)
            status, response_bytes = 502, (len(body) if body else 0)
        end = now
    else:
        assert resp is not None
        status = resp.status_code
        response_bytes = (
            counter_stream.n if counter_stream is not None else len(resp.raw_content or b"")
        )
        end = resp.timestamp_end or now
    ttfb = (
        (resp.timestamp_start - start) * 1000.0
        if resp is not None and resp.timestamp_start
        else None
    )

    if req.raw_content is not None:
        request_bytes: int | None = len(req.raw_content)
    else:
        cl = req.headers.get("content-length")
        request_bytes = int(cl) if cl and cl.isdigit() else None
    trace_id, parent_span = parse_traceparent(req.headers.get("traceparent"))
    client = flow.client_conn.peername

    row: tuple[object, ...] = (
        f"{gateway_id}-{counter}",
        start,
        meta.get("aiops_route"),
        req.method,
        "https" if flow.client_conn.tls_established else "http",
        meta.get("aiops_client_host") or req.host_header or req.host,
        path,
        redact_query(query) if query else None,
        status,
        error,
        detail,
        (end - start) * 1000.0,
        ttfb,
        request_bytes,
        response_bytes,
        meta.get("aiops_upstream"),
        None,  # api_key_id
        None,  # tenant
        "http",
        None, None, None, None, None,  # llm_provider, llm_model, tokens, cost
        streamed,
        None,  # ttft_ms
        None, None,  # mcp_method, mcp_tool
        trace_id,
        parent_span,
        req.http_version,
        req.headers.get("user-agent"),
        client[0] if client else None,
        gateway_id,
    ) + _LATER_COLUMNS  # fmt: skip
    extra = meta.get(META_FIELDS)
    # [changes] the upstream's version (only from an answer the upstream itself sent)
    version = upstream_version(resp.headers.fields) if resp is not None and not error else None
    if extra or version:
        values = list(row)
        values[_UPSTREAM_VERSION] = version
        for name, value in (extra or {}).items():
            values[COLUMN_INDEX[name]] = value
        row = tuple(values)
    return row


_UPSTREAM_VERSION = COLUMN_INDEX["upstream_version"]
_VERSION_HEADERS = (b"x-version", b"x-api-version", b"api-version")


def upstream_version(fields: tuple[tuple[bytes, bytes], ...]) -> str | None:
    """The upstream's version from its response headers: x-version, x-api-version or
    api-version, else Server; at most 100 characters. One pass over the headers."""
    server = None
    for name, value in fields:
        lowered = name.lower()
        if lowered in _VERSION_HEADERS:
            return value.decode("latin-1").strip()[:100] or None
        if lowered == b"server":
            server = value
    if server is None:
        return None
    return server.decode("latin-1").strip()[:100] or None


def _warm_up_parquet() -> None:
    """Import and exercise pyarrow's Parquet writer now, not on the first flush: the first
    import costs 1-2 s of GIL time, which would stall live traffic."""
    import pyarrow.parquet as pq

    from suite.schema import records_to_arrow

    pq.write_table(records_to_arrow([]), io.BytesIO(), compression="zstd")


addons = [Capture()]
