"""The small aggregates the dashboards show, each a function with its SQL beside it.

Pages call these (cached) and never query `requests` row by row; nothing here writes.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from suite.store import Store


def has_table(store: Store, name: str) -> bool:
    return bool(
        store.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).item()
    )


def data_span(store: Store) -> tuple[datetime | None, datetime | None]:
    """First and last minute with traffic in the rollups."""
    row = store.query(
        "SELECT min(minute) AS first, max(minute) AS last FROM metrics_1m "
        "WHERE dimension = 'service'"
    ).row(0)
    return row[0], row[1]


def golden_signals(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    """Per service over [since, until): rate, error share, p95 latency, tokens and cost."""
    return store.query(
        """
        SELECT service,
               sum(requests) AS calls,
               sum(requests) / greatest(date_diff('minute', ?::TIMESTAMP, ?::TIMESTAMP), 1)
                   AS calls_per_min,
               100.0 * sum(errors_5xx) / sum(requests) AS error_pct,
               100.0 * sum(errors_4xx) / sum(requests) AS client_error_pct,
               quantile_cont(latency_p95_ms, 0.5) AS p95_ms,
               max(latency_p95_ms) AS worst_p95_ms,
               sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
               sum(cost_usd) AS cost_usd
        FROM metrics_1m
        WHERE dimension = 'service' AND minute >= ? AND minute < ?
        GROUP BY service ORDER BY calls DESC
        """,
        [since, until, since, until],
    )


def signal_series(
    store: Store, since: datetime, until: datetime, bucket_minutes: int
) -> pl.DataFrame:
    """Per service and time bucket: calls per minute, error ratio, worst p95."""
    return store.query(
        """
        SELECT time_bucket(to_minutes(?::BIGINT), minute) AS t, service,
               sum(requests) / ?::DOUBLE AS calls_per_min,
               sum(errors_5xx)::DOUBLE / sum(requests) AS error_ratio,
               max(latency_p95_ms) AS p95_ms
        FROM metrics_1m
        WHERE dimension = 'service' AND minute >= ? AND minute < ?
        GROUP BY ALL ORDER BY t, service
        """,
        [bucket_minutes, bucket_minutes, since, until],
    )


def open_incidents(store: Store) -> pl.DataFrame:
    """Incidents not resolved yet, newest first (empty before the incidents table exists)."""
    if not has_table(store, "incidents"):
        return pl.DataFrame()
    return store.query(
        "SELECT id, severity, status, service, signal, title, opened_at FROM incidents "
        "WHERE status <> 'resolved' ORDER BY opened_at DESC LIMIT 50"
    )
