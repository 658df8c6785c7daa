"""The rollup job: `requests` -> `metrics_1m`, per minute and service, and per LLM model
and tenant where present. Incremental: only minutes marked dirty by ingest are recomputed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from suite.store import Store

log = logging.getLogger("aiops.rollup")

# One recompute per transaction at most this many minutes, so the exclusive lock stays
# short even when a large backfill marked weeks of minutes dirty.
MAX_MINUTES_PER_BATCH = 1440

_AGGREGATES = """
    count(*) AS requests,
    count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS errors_4xx,
    count(*) FILTER (WHERE status >= 500 OR (status IS NULL AND error IS NOT NULL
                                            AND error <> 'client_disconnected')) AS errors_5xx,
    count(*) FILTER (WHERE error IS NOT NULL AND error <> 'client_disconnected') AS gateway_errors,
    count(*) FILTER (WHERE status >= 500 OR (status IS NULL AND error IS NOT NULL
                                            AND error <> 'client_disconnected'))::DOUBLE / count(*) AS error_ratio,
    quantile_cont(duration_ms, 0.5) AS latency_p50_ms,
    quantile_cont(duration_ms, 0.95) AS latency_p95_ms,
    quantile_cont(duration_ms, 0.99) AS latency_p99_ms,
    avg(duration_ms) AS latency_mean_ms,
    quantile_cont(ttfb_ms, 0.95) AS ttfb_p95_ms,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cost_usd) AS cost_usd
"""

ROLLUP_SQL = f"""
WITH src AS (
    SELECT r.*, date_trunc('minute', r.ts) AS minute, coalesce(r.route, '(unrouted)') AS service
    FROM requests r
    WHERE date_trunc('minute', r.ts) IN (SELECT minute FROM batch_minutes)
)
SELECT minute, service, 'service' AS dimension, '' AS key, {_AGGREGATES}, now()::TIMESTAMP
FROM src GROUP BY minute, service
UNION ALL
SELECT minute, service, 'model', llm_model, {_AGGREGATES}, now()::TIMESTAMP
FROM src WHERE llm_model IS NOT NULL GROUP BY minute, service, llm_model
UNION ALL
SELECT minute, service, 'tenant', tenant, {_AGGREGATES}, now()::TIMESTAMP
FROM src WHERE tenant IS NOT NULL GROUP BY minute, service, tenant
"""


@dataclass
class RollupResult:
    minutes: int = 0
    rows: int = 0
    seconds: float = 0.0


def rollup_dirty_minutes(store: Store) -> RollupResult:
    """Recompute every dirty minute (in batches); each batch replaces its minutes' rows and
    clears their dirty marks in one transaction."""
    result = RollupResult()
    t0 = time.perf_counter()
    while True:
        with store.write() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "CREATE TEMP TABLE batch_minutes AS SELECT minute FROM rollup_dirty_minutes "
                    f"ORDER BY minute LIMIT {MAX_MINUTES_PER_BATCH}"
                )
                (n,) = con.execute("SELECT count(*) FROM batch_minutes").fetchone() or (0,)
                if n == 0:
                    con.execute("ROLLBACK")
                    break
                con.execute(
                    "DELETE FROM metrics_1m WHERE minute IN (SELECT minute FROM batch_minutes)"
                )
                con.execute(f"INSERT INTO metrics_1m {ROLLUP_SQL}")
                (rows,) = con.execute(
                    "SELECT count(*) FROM metrics_1m WHERE minute IN (SELECT minute FROM batch_minutes)"
                ).fetchone() or (0,)
                con.execute(
                    "DELETE FROM rollup_dirty_minutes WHERE minute IN (SELECT minute FROM batch_minutes)"
                )
                con.execute("DROP TABLE batch_minutes")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        result.minutes += n
        result.rows += rows
    result.seconds = time.perf_counter() - t0
    if result.minutes:
        log.info(
            "rollup: %d minutes, %d rows in %.2f s", result.minutes, result.rows, result.seconds
        )
    return result
