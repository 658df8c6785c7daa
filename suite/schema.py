"""The `requests` record: one column list shared by the gateway's spool writer, the
ingest job and the table migration, so the three can never disagree.

Changing a column here needs a named migration in `suite/migrations.py` as well.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa


class Column(NamedTuple):
    name: str
    arrow: pa.DataType
    sql: str
    doc: str


# Order matters: the capture addon builds tuples in exactly this order.
REQUEST_COLUMNS: tuple[Column, ...] = (
    Column("id", pa.string(), "VARCHAR", "unique id: <gateway_id>-<counter>"),
    Column("ts", pa.timestamp("us"), "TIMESTAMP", "UTC time the request started arriving"),
    Column("route", pa.string(), "VARCHAR", "route (= service) name; NULL when no route matched"),
    Column("method", pa.string(), "VARCHAR", "HTTP method"),
    Column("scheme", pa.string(), "VARCHAR", "scheme the client used"),
    Column("host", pa.string(), "VARCHAR", "host the client addressed"),
    Column("path", pa.string(), "VARCHAR", "path as received, without the query string"),
    Column("query", pa.string(), "VARCHAR", "query string with secret-looking values redacted"),
    Column("status", pa.int16(), "SMALLINT", "status the client got; NULL when none"),
    Column("error", pa.string(), "VARCHAR", "why the gateway answered or the flow failed (a code)"),
    Column("error_detail", pa.string(), "VARCHAR", "the underlying error message"),
    Column("duration_ms", pa.float64(), "DOUBLE", "first request byte to last response byte"),
    Column("ttfb_ms", pa.float64(), "DOUBLE", "first request byte to first upstream response byte"),
    Column("request_bytes", pa.int64(), "BIGINT", "request body bytes received from the client"),
    Column("response_bytes", pa.int64(), "BIGINT", "response body bytes sent to the client"),
    Column("upstream", pa.string(), "VARCHAR", "upstream base URL the request went to"),
    Column("api_key_id", pa.string(), "VARCHAR", "gateway key id (never the key)"),
    Column("tenant", pa.string(), "VARCHAR", "tenant of the gateway key"),
    Column("kind", pa.string(), "VARCHAR", "http | llm | mcp"),
    Column("llm_provider", pa.string(), "VARCHAR", "LLM provider"),
    Column("llm_model", pa.string(), "VARCHAR", "model that served the call"),
    Column("prompt_tokens", pa.int64(), "BIGINT", "input tokens"),
    Column("completion_tokens", pa.int64(), "BIGINT", "output tokens"),
    Column("cost_usd", pa.float64(), "DOUBLE", "cost in USD; NULL when unpriced"),
    Column("streamed", pa.bool_(), "BOOLEAN", "response was streamed to the client"),
    Column("ttft_ms", pa.float64(), "DOUBLE", "time to first token (LLM streams)"),
    Column("mcp_method", pa.string(), "VARCHAR", "MCP JSON-RPC method"),
    Column("mcp_tool", pa.string(), "VARCHAR", "MCP tool name for tools/call"),
    Column("trace_id", pa.string(), "VARCHAR", "W3C trace id from traceparent"),
    Column("parent_span_id", pa.string(), "VARCHAR", "W3C parent span id from traceparent"),
    Column("http_version", pa.string(), "VARCHAR", "HTTP version the client spoke"),
    Column("user_agent", pa.string(), "VARCHAR", "client User-Agent"),
    Column("client_addr", pa.string(), "VARCHAR", "client IP address"),
    Column("gateway_id", pa.string(), "VARCHAR", "the gateway process that recorded the call"),
    # -- 0002: LLM and MCP details --------------------------------------------------------
    Column("llm_api", pa.string(), "VARCHAR", "chat | responses | embeddings | messages"),
    Column("llm_requested_model", pa.string(), "VARCHAR", "model the client asked for"),
    Column(
        "cached_prompt_tokens",
        pa.int64(),
        "BIGINT",
        "prompt tokens served from the provider's cache",
    ),
    Column(
        "cache_creation_tokens",
        pa.int64(),
        "BIGINT",
        "prompt tokens written to the provider's cache",
    ),
    Column(
        "usage_source",
        pa.string(),
        "VARCHAR",
        "provider (reported) | estimated (no usage reported)",
    ),
    Column(
        "llm_unpriced", pa.bool_(), "BOOLEAN", "tokens were used but the price table has no price"
    ),
    Column(
        "llm_finish_reason",
        pa.string(),
        "VARCHAR",
        "why generation stopped (stop, length, end_turn...)",
    ),
    Column(
        "output_tokens_per_s", pa.float64(), "DOUBLE", "completion tokens per second of generation"
    ),
    Column("mcp_session_id", pa.string(), "VARCHAR", "MCP session id (Mcp-Session-Id / sessionId)"),
    Column("mcp_request_id", pa.string(), "VARCHAR", "JSON-RPC id of the (first) request"),
    Column("mcp_batch_size", pa.int32(), "INTEGER", "JSON-RPC messages in the request body"),
    Column("jsonrpc_error_code", pa.int32(), "INTEGER", "JSON-RPC error code in the response"),
    Column(
        "jsonrpc_error_message", pa.string(), "VARCHAR", "JSON-RPC error message in the response"
    ),
    Column("mcp_tool_error", pa.bool_(), "BOOLEAN", "a tools/call result flagged isError"),
    Column("body_capture", pa.string(), "VARCHAR", "the route's body capture policy for this call"),
    # -- 0010: gateway policy and changes ----------------------------------------------------
    Column("llm_alias", pa.string(), "VARCHAR", "model alias the client asked for"),
    Column(
        "fallback_chain",
        pa.string(),
        "VARCHAR",
        "targets tried in order, 'route:model(outcome)' joined by ' > '",
    ),
    Column("attempts", pa.int32(), "INTEGER", "upstream attempts (retries and fallbacks)"),
    Column("cache_hit", pa.bool_(), "BOOLEAN", "answered from the gateway's response cache"),
    Column("prompt_route", pa.string(), "VARCHAR", "prompt route that made this LLM call"),
    Column("route_version", pa.string(), "VARCHAR", "the route's API version"),
    Column("upstream_version", pa.string(), "VARCHAR", "upstream's Server/version header"),
    Column("chaos", pa.string(), "VARCHAR", "fault a chaos drill injected into this call"),
    # -- 0012: service catalog ---------------------------------------------------------------
    Column("caller", pa.string(), "VARCHAR", "calling service named by an x-aiops-caller header"),
)
# The columns of the first migrations, frozen: later columns come with later migrations.
REQUESTS_V1_COLUMNS = 34
REQUESTS_V2_COLUMNS = 49

REQUEST_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in REQUEST_COLUMNS)
REQUEST_ARROW_SCHEMA = pa.schema([pa.field(c.name, c.arrow) for c in REQUEST_COLUMNS])
COLUMN_INDEX = {name: i for i, name in enumerate(REQUEST_COLUMN_NAMES)}
# The two columns a spool segment must have to be ours.
REQUIRED_SEGMENT_COLUMNS = ("id", "ts")


def requests_table_ddl(
    table: str = "requests", columns: tuple[Column, ...] = REQUEST_COLUMNS
) -> str:
    cols = ",\n    ".join(f"{c.name} {c.sql}" for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    {cols}\n)"


def add_columns_ddl(table: str, columns: tuple[Column, ...]) -> tuple[str, ...]:
    return tuple(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {c.name} {c.sql}" for c in columns)


# Captured bodies, one row per call whose route captures them (redacted unless 'full').
BODY_COLUMNS: tuple[Column, ...] = (
    Column("request_id", pa.string(), "VARCHAR", "requests.id"),
    Column("ts", pa.timestamp("us"), "TIMESTAMP", "requests.ts"),
    Column("route", pa.string(), "VARCHAR", "route name"),
    Column("policy", pa.string(), "VARCHAR", "metadata | redacted | full"),
    Column("request_headers", pa.string(), "VARCHAR", "JSON object; secrets replaced"),
    Column("response_headers", pa.string(), "VARCHAR", "JSON object; secrets replaced"),
    Column("request_content_type", pa.string(), "VARCHAR", "Content-Type of the request"),
    Column("response_content_type", pa.string(), "VARCHAR", "Content-Type of the response"),
    Column("request_body", pa.string(), "VARCHAR", "body text (redacted unless policy is full)"),
    Column("response_body", pa.string(), "VARCHAR", "body text (redacted unless policy is full)"),
    Column("request_body_bytes", pa.int64(), "BIGINT", "size of the whole request body"),
    Column("response_body_bytes", pa.int64(), "BIGINT", "size of the whole response body"),
    Column("request_truncated", pa.bool_(), "BOOLEAN", "request body cut at max_body_bytes"),
    Column("response_truncated", pa.bool_(), "BOOLEAN", "response body cut at max_body_bytes"),
    Column("redactions", pa.string(), "VARCHAR", "JSON: replacements per pattern"),
    Column("gateway_id", pa.string(), "VARCHAR", "gateway that captured it"),
)
BODY_ARROW_SCHEMA = pa.schema([pa.field(c.name, c.arrow) for c in BODY_COLUMNS])
BODY_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in BODY_COLUMNS)


def records_to_arrow(rows: list[tuple[object, ...]]) -> pa.Table:
    """Turn capture tuples (ts as epoch seconds) into an Arrow table of the spool schema."""
    return _tuples_to_arrow(rows, REQUEST_COLUMNS, REQUEST_ARROW_SCHEMA)


def bodies_to_arrow(rows: list[tuple[object, ...]]) -> pa.Table:
    return _tuples_to_arrow(rows, BODY_COLUMNS, BODY_ARROW_SCHEMA)


def _tuples_to_arrow(
    rows: list[tuple[object, ...]], schema_cols: tuple[Column, ...], schema: pa.Schema
) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema_cols]
    arrays = []
    for col, values in zip(schema_cols, columns, strict=True):
        if col.name == "ts":
            micros = pa.array(
                [None if v is None else int(v * 1_000_000) for v in values], pa.int64()
            )
            arrays.append(micros.cast(col.arrow))
        else:
            arrays.append(pa.array(values, col.arrow))
    return pa.Table.from_arrays(arrays, schema=schema)
