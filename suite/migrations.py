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
    Migration(
        "0004_anomalies_and_incidents",
        (
            # One row per scored minute at or over the detector's threshold (suite.detect_job).
            # Ids are assigned under the write lock (max(id) + n), so no sequences.
            """
            CREATE TABLE IF NOT EXISTS anomalies (
                id BIGINT PRIMARY KEY,
                ts TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                dimension VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                value DOUBLE,
                score DOUBLE NOT NULL,
                detector VARCHAR NOT NULL,
                threshold DOUBLE NOT NULL,
                incident_id BIGINT,
                created_at TIMESTAMP NOT NULL
            )
            """,
            # suite.incidents: fingerprint = service + signal; `signals` lists every signal
            # grouped into the incident (the first one is `signal`).
            """
            CREATE TABLE IF NOT EXISTS incidents (
                id BIGINT PRIMARY KEY,
                fingerprint VARCHAR NOT NULL,
                title VARCHAR NOT NULL,
                service VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                opened_at TIMESTAMP NOT NULL,
                acknowledged_at TIMESTAMP,
                resolved_at TIMESTAMP,
                assignee VARCHAR,
                last_seen_at TIMESTAMP NOT NULL,
                anomaly_count BIGINT NOT NULL,
                source VARCHAR NOT NULL,
                reopened_count INTEGER NOT NULL,
                signals VARCHAR[] NOT NULL,
                max_score DOUBLE,
                updated_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS incident_events (
                id BIGINT PRIMARY KEY,
                incident_id BIGINT NOT NULL,
                ts TIMESTAMP NOT NULL,
                kind VARCHAR NOT NULL,
                actor VARCHAR NOT NULL,
                detail VARCHAR
            )
            """,
            # Where each series' detector stopped, so the next run continues from there and
            # live scores equal replayed ones.
            """
            CREATE TABLE IF NOT EXISTS detector_state (
                service VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                dimension VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                detector VARCHAR NOT NULL,
                last_ts TIMESTAMP NOT NULL,  -- the minute `state` covers
                scored_until TIMESTAMP NOT NULL,  -- the last minute with anomalies on record
                state BLOB,
                updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (service, signal, dimension, key, detector)
            )
            """,
            "CREATE INDEX IF NOT EXISTS incident_events_by_incident ON incident_events (incident_id)",
        ),
    ),
    Migration(
        "0005_slo_notifications",
        (
            # suite.slo: one row per SLO and run (history for the dashboards' burn charts).
            """
            CREATE TABLE IF NOT EXISTS slo_status (
                slo VARCHAR NOT NULL,
                service VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                objective DOUBLE NOT NULL,
                computed_at TIMESTAMP NOT NULL,
                window_days INTEGER NOT NULL,
                burn_5m DOUBLE NOT NULL,
                burn_30m DOUBLE NOT NULL,
                burn_1h DOUBLE NOT NULL,
                burn_6h DOUBLE NOT NULL,
                burn_3d DOUBLE NOT NULL,
                burn_window DOUBLE NOT NULL,
                events_window BIGINT NOT NULL,
                bad_events_window BIGINT NOT NULL,
                budget_remaining DOUBLE NOT NULL,
                alert_level VARCHAR NOT NULL,
                incident_id BIGINT,
                PRIMARY KEY (slo, computed_at)
            )
            """,
            # suite.notify: one row per notice and channel; a channel is named, never its
            # URL or credentials (webhook URLs carry tokens).
            """
            CREATE TABLE IF NOT EXISTS notifications (
                id BIGINT PRIMARY KEY,
                incident_id BIGINT NOT NULL,
                channel VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                attempts INTEGER NOT NULL,
                last_error VARCHAR,
                created_at TIMESTAMP NOT NULL,
                sent_at TIMESTAMP,
                next_attempt_at TIMESTAMP,
                suppressed_by VARCHAR
            )
            """,
            "CREATE INDEX IF NOT EXISTS notifications_by_incident ON notifications (incident_id)",
            """
            CREATE TABLE IF NOT EXISTS silences (
                id BIGINT PRIMARY KEY,
                service VARCHAR NOT NULL,
                signal VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                expires_at TIMESTAMP NOT NULL,
                created_by VARCHAR NOT NULL,
                reason VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS maintenance_windows (
                id BIGINT PRIMARY KEY,
                service VARCHAR NOT NULL,
                starts_at TIMESTAMP NOT NULL,
                ends_at TIMESTAMP NOT NULL,
                reason VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                change_id VARCHAR,
                created_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
)
