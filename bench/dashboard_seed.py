"""Seeds a home with N generated requests (default 10 million) for the dashboard benchmark.

Generated inside DuckDB (through suite.store, the only module that opens it): 14 days
ending now, seven services of three kinds, tenants and keys, LLM tokens
and cost, a few percent of errors; then the minute rollups, incidents, changes and SLO
history the pages read. Nothing is written to the repository.
"""

from __future__ import annotations

import time
from datetime import timedelta

from suite.clock import utc_now
from suite.rollup import rollup_dirty_minutes
from suite.store import Store

SERVICES = (  # name, kind, share of traffic, base latency ms
    ("claims-api", "http", 0.22, 45),
    ("policy-admin", "http", 0.28, 35),
    ("quotes-api", "http", 0.25, 60),
    ("payments-api", "http", 0.10, 80),
    ("openai", "llm", 0.07, 900),
    ("claude", "llm", 0.04, 1200),
    ("insurance-tools", "mcp", 0.04, 25),
)

SEED_SQL = """
INSERT INTO requests BY NAME
WITH svc(idx, name, kind, share, base_ms) AS (VALUES {services}),
cum AS (
    SELECT *, sum(share) OVER (ORDER BY idx) - share AS lo, sum(share) OVER (ORDER BY idx) AS hi
    FROM svc
),
raw AS (
    SELECT i, hash(i) AS h, hash(i * 7 + 3) AS h2,
           -- spread evenly over the span, jittered by up to five minutes (HUGEINT: i *
           -- span overflows BIGINT past ~7.6M rows)
           ($start::TIMESTAMP + to_microseconds(
               (i::HUGEINT * $span_us // $n)::BIGINT + (hash(i * 13) % 600000000)::BIGINT - 300000000))
               AS ts
    FROM range($n) t(i)
),
picked AS (
    SELECT r.*, c.idx, c.name, c.kind, c.base_ms,
           (h % 10000) / 10000.0 AS u, (h2 % 10000) / 10000.0 AS v
    FROM raw r JOIN cum c ON ((r.h // 10000) % 10000) / 10000.0 >= c.lo
                          AND ((r.h // 10000) % 10000) / 10000.0 < c.hi
)
SELECT 'seed-' || i AS id, ts, name AS route,
       CASE WHEN kind = 'http' AND u < 0.7 THEN 'GET' ELSE 'POST' END AS method,
       'http' AS scheme, 'gateway.local' AS host,
       '/' || name || '/items/' || (h2 % 5000) AS path,
       CASE WHEN u < 0.012 THEN 500 + (h2 % 4)::INT WHEN u < 0.04 THEN 404
            WHEN u < 0.05 THEN 429 ELSE 200 END::SMALLINT AS status,
       CASE WHEN u < 0.002 THEN 'upstream_unreachable' END AS error,
       base_ms * (0.5 + v) * (CASE WHEN v > 0.99 THEN 8 ELSE 1 END) AS duration_ms,
       base_ms * (0.3 + v / 2) AS ttfb_ms,
       (200 + h2 % 3000)::BIGINT AS request_bytes, (500 + h % 20000)::BIGINT AS response_bytes,
       'http://127.0.0.1:9' || idx AS upstream,
       'ak_' || lpad((h2 % 12)::VARCHAR, 6, '0') AS api_key_id,
       ['acme-motor', 'northwind-home', 'contoso-life', 'fabrikam-fleet', 'globex-travel',
        'initech-pet'][1 + (h2 % 6)::INT] AS tenant,
       kind,
       CASE name WHEN 'openai' THEN 'openai' WHEN 'claude' THEN 'anthropic' END AS llm_provider,
       CASE name WHEN 'openai' THEN (CASE WHEN v < 0.8 THEN 'gpt-4o-mini' ELSE 'gpt-4o' END)
                 WHEN 'claude' THEN 'claude-3-5-haiku' END AS llm_model,
       CASE WHEN kind = 'llm' THEN (300 + h % 1500)::BIGINT END AS prompt_tokens,
       CASE WHEN kind = 'llm' THEN (50 + h2 % 400)::BIGINT END AS completion_tokens,
       CASE WHEN kind = 'llm' THEN ((300 + h % 1500) * 0.15 + (50 + h2 % 400) * 0.6) / 1e6
            * CASE WHEN v >= 0.8 AND name = 'openai' THEN 16 ELSE 1 END END AS cost_usd,
       CASE WHEN kind = 'llm' THEN u < 0.5 END AS streamed,
       CASE WHEN kind = 'llm' AND u < 0.5 THEN base_ms * 0.3 * (0.5 + v) END AS ttft_ms,
       CASE WHEN kind = 'mcp' THEN 'tools/call' END AS mcp_method,
       CASE WHEN kind = 'mcp' THEN ['lookup_policy', 'claim_status', 'quote'][1 + (h % 3)::INT]
            END AS mcp_tool,
       CASE WHEN kind = 'llm' THEN v < 0.03 END AS cache_hit,
       'seed' AS gateway_id
FROM picked
"""


def seed(store: Store, n: int = 10_000_000, days: int = 14) -> dict[str, float]:
    """Fill `store` with n requests over `days` ending now, plus rollups; returns timings."""
    store.ensure_schema()
    end = utc_now().replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    services = ", ".join(
        f"({i}, '{name}', '{kind}', {share}, {ms})"
        for i, (name, kind, share, ms) in enumerate(SERVICES)
    )
    t0 = time.perf_counter()
    with store.write() as con:
        con.execute(
            SEED_SQL.format(services=services),
            {"start": start, "span_us": days * 86_400_000_000, "n": n},
        )
        con.execute(
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) "
            "FROM requests ON CONFLICT DO NOTHING"
        )
    t1 = time.perf_counter()
    rollup_dirty_minutes(store)
    t2 = time.perf_counter()
    return {"requests_seconds": t1 - t0, "rollup_seconds": t2 - t1}
