"""Named schema migrations, applied in order, each in its own transaction.

Add new ones at the end; never edit or reorder one that has shipped.
"""

from __future__ import annotations

from typing import NamedTuple

from suite.schema import (
    BODY_COLUMNS,
    REQUEST_COLUMNS,
    REQUESTS_V1_COLUMNS,
    add_columns_ddl,
    requests_table_ddl,
)


class Migration(NamedTuple):
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_requests_and_ingest_ledger",
        (
            requests_table_ddl("requests", REQUEST_COLUMNS[:REQUESTS_V1_COLUMNS]),
            # The ingest ledger: a segment's name is written in the same transaction as
            # its rows, which is what makes ingest exactly-once.
            """
            CREATE TABLE IF NOT EXISTS ingested_segments (
                name VARCHAR PRIMARY KEY,
                rows BIGINT NOT NULL,
                loaded_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        "0002_llm_mcp_columns_and_request_bodies",
        (
            *add_columns_ddl("requests", REQUEST_COLUMNS[REQUESTS_V1_COLUMNS:]),
            requests_table_ddl("request_bodies", BODY_COLUMNS),
        ),
    ),
    Migration(
        "0003_metrics_1m_rollups",
        (
            # Per minute and service: the whole service (dimension 'service', key ''), and
            # per LLM model ('model') and per tenant ('tenant') where present.
            """
            CREATE TABLE IF NOT EXISTS metrics_1m (
                minute TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                dimension VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                requests BIGINT NOT NULL,
                errors_4xx BIGINT NOT NULL,
                errors_5xx BIGINT NOT NULL,
                gateway_errors BIGINT NOT NULL,
                error_ratio DOUBLE NOT NULL,
                latency_p50_ms DOUBLE,
                latency_p95_ms DOUBLE,
                latency_p99_ms DOUBLE,
                latency_mean_ms DOUBLE,
                ttfb_p95_ms DOUBLE,
                request_bytes BIGINT,
                response_bytes BIGINT,
                prompt_tokens BIGINT,
                completion_tokens BIGINT,
                cost_usd DOUBLE,
                computed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (minute, service, dimension, key)
            )
            """,
            # Minutes whose rows changed since they were last rolled up; written by ingest
            # in the same transaction as the rows, consumed by the rollup job.
            "CREATE TABLE IF NOT EXISTS rollup_dirty_minutes (minute TIMESTAMP PRIMARY KEY)",
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) FROM requests "
            "WHERE ts IS NOT NULL ON CONFLICT DO NOTHING",
        ),
    ),
)
