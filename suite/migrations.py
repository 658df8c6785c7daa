"""Named schema migrations, applied in order, each in its own transaction.

Add new ones at the end; never edit or reorder one that has shipped.
"""

from __future__ import annotations

from typing import NamedTuple

from suite.schema import (
    BODY_COLUMNS,
    REQUEST_COLUMNS,
    REQUESTS_V1_COLUMNS,
    REQUESTS_V2_COLUMNS,
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
            *add_columns_ddl("requests", REQUEST_COLUMNS[REQUESTS_V1_COLUMNS:REQUESTS_V2_COLUMNS]),
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
    Migration(
        "0006_changes",
        (
            # suite.changes: one row per change, whatever its source (CLI, the gateway's
            # admin endpoint, a config reload, a chaos drill, an upstream version seen in
            # traffic, a new route). Ids are strings ("CHG-" + hex) so gateways can mint
            # them without the store.
            """
            CREATE TABLE IF NOT EXISTS changes (
                id VARCHAR PRIMARY KEY,
                ts TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                summary VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                risk VARCHAR,
                change_type VARCHAR,
                window_start TIMESTAMP,
                window_end TIMESTAMP,
                requested_by VARCHAR,
                approved_by VARCHAR,
                approved_at TIMESTAMP,
                implemented_at TIMESTAMP,
                closed_at TIMESTAMP,
                detail VARCHAR,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )
            """,
            # The lifecycle history of each change (proposed -> approved -> ...).
            """
            CREATE TABLE IF NOT EXISTS change_events (
                id BIGINT PRIMARY KEY,
                change_id VARCHAR NOT NULL,
                ts TIMESTAMP NOT NULL,
                from_status VARCHAR,
                to_status VARCHAR NOT NULL,
                actor VARCHAR NOT NULL,
                note VARCHAR
            )
            """,
            "CREATE INDEX IF NOT EXISTS change_events_by_change ON change_events (change_id)",
            # Ranked suspect changes per incident (change-incident correlation).
            """
            CREATE TABLE IF NOT EXISTS incident_suspects (
                incident_id BIGINT NOT NULL,
                change_id VARCHAR NOT NULL,
                rank INTEGER NOT NULL,
                score DOUBLE NOT NULL,
                reason VARCHAR NOT NULL,
                computed_at TIMESTAMP NOT NULL,
                PRIMARY KEY (incident_id, change_id)
            )
            """,
            # What traffic showed last per route (suite.changes.observe_changes): aspect
            # 'route' (key ''), 'version' (key = upstream URL, value = its version) and
            # 'model' (key = LLM model); a later difference is recorded as a change.
            """
            CREATE TABLE IF NOT EXISTS change_observations (
                service VARCHAR NOT NULL,
                aspect VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                value VARCHAR,
                first_seen TIMESTAMP NOT NULL,
                last_seen TIMESTAMP NOT NULL,
                change_id VARCHAR,
                PRIMARY KEY (service, aspect, key)
            )
            """,
            # How far each change job has read `requests` (by ts).
            """
            CREATE TABLE IF NOT EXISTS change_scan_state (
                name VARCHAR PRIMARY KEY,
                watermark TIMESTAMP,
                updated_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        "0007_service_catalog_and_problems",
        (
            """
            CREATE TABLE IF NOT EXISTS services (
                name VARCHAR PRIMARY KEY,
                owner VARCHAR,
                tier VARCHAR,
                sla_target DOUBLE,
                description VARCHAR,
                -- 'config' (declared in [[services]]), 'route' (a route only), 'observed'
                -- (only named as a caller in traffic), 'retired' (gone from the config)
                source VARCHAR NOT NULL,
                first_seen TIMESTAMP,
                updated_at TIMESTAMP NOT NULL,
                kind VARCHAR,  -- http | llm | mcp for routes, external otherwise
                runbook VARCHAR,
                last_seen TIMESTAMP
            )
            """,
            # suite.catalog: one row per edge `service` -> `depends_on` (service calls /
            # needs depends_on). source 'config' (declared; wins) or 'observed' (seen in
            # traffic only); first_seen/last_seen/calls count observed calls either way.
            """
            CREATE TABLE IF NOT EXISTS service_dependencies (
                service VARCHAR NOT NULL,
                depends_on VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                first_seen TIMESTAMP,
                last_seen TIMESTAMP,
                calls BIGINT,
                PRIMARY KEY (service, depends_on)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS problems (
                id BIGINT PRIMARY KEY,
                fingerprint VARCHAR NOT NULL UNIQUE,
                title VARCHAR NOT NULL,
                service VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                root_cause VARCHAR,
                known_error BOOLEAN NOT NULL DEFAULT false,
                workaround VARCHAR,
                incident_count BIGINT NOT NULL,
                first_seen TIMESTAMP NOT NULL,
                last_seen TIMESTAMP NOT NULL,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS problem_incidents (
                problem_id BIGINT NOT NULL,
                incident_id BIGINT NOT NULL,
                PRIMARY KEY (problem_id, incident_id)
            )
            """,
            "ALTER TABLE problems ADD COLUMN IF NOT EXISTS resolved_at TIMESTAMP",
            # Observed calls per hour and edge, recomputed for the hours a catalog run
            # re-examines, so overlapping runs never count a call twice. `via`: 'header'
            # (x-aiops-caller) or 'trace' (W3C trace enclosure).
            """
            CREATE TABLE IF NOT EXISTS service_dependency_calls (
                hour TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                depends_on VARCHAR NOT NULL,
                via VARCHAR NOT NULL,
                calls BIGINT NOT NULL,
                first_seen TIMESTAMP NOT NULL,
                last_seen TIMESTAMP NOT NULL,
                PRIMARY KEY (hour, service, depends_on, via)
            )
            """,
            # Where the catalog job stopped (newest request ts examined).
            """
            CREATE TABLE IF NOT EXISTS catalog_state (
                name VARCHAR PRIMARY KEY,
                ts TIMESTAMP
            )
            """,
        ),
    ),
    Migration(
        "0008_forecasts",
        (
            # suite.forecast: one row per series, metric, run and future hour. Unique on
            # (run_at, service, dimension, key, metric, ts) by construction (a run replaces
            # its own rows); no index, so a run's ~100k rows insert in a blink.
            """
            CREATE TABLE IF NOT EXISTS forecasts (
                run_at TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                dimension VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                ts TIMESTAMP NOT NULL,
                yhat DOUBLE NOT NULL,
                lower DOUBLE NOT NULL,
                upper DOUBLE NOT NULL
            )
            """,
            # One row per series, metric and run: the model, its back-test error and the
            # predicted time until the configured limit is crossed.
            """
            CREATE TABLE IF NOT EXISTS forecast_runs (
                run_at TIMESTAMP NOT NULL,
                service VARCHAR NOT NULL,
                dimension VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                model VARCHAR NOT NULL,
                history_points BIGINT NOT NULL,
                horizon_days INTEGER NOT NULL,
                interval DOUBLE NOT NULL,
                mape_backtest DOUBLE,
                limit_value DOUBLE,
                limit_name VARCHAR,
                crosses_at TIMESTAMP,
                hours_to_limit DOUBLE,
                -- [capacity] what the figures above mean, for people reading the table
                history_start TIMESTAMP,
                history_end TIMESTAMP,
                backtest_points BIGINT,
                value_basis VARCHAR,
                current_value DOUBLE,
                value_7d DOUBLE,
                value_14d DOUBLE,
                crossing VARCHAR,
                upper_crosses_at TIMESTAMP,
                upper_hours_to_limit DOUBLE,
                note VARCHAR,
                PRIMARY KEY (run_at, service, dimension, key, metric)
            )
            """,
        ),
    ),
    Migration(
        "0009_audit_log",
        (
            # suite.audit: every action a person takes (CLI or dashboard), who and when.
            """
            CREATE TABLE IF NOT EXISTS audit_log (
                id BIGINT PRIMARY KEY,
                ts TIMESTAMP NOT NULL,
                actor VARCHAR NOT NULL,
                action VARCHAR NOT NULL,
                target_kind VARCHAR NOT NULL,
                target_id VARCHAR,
                detail VARCHAR,
                source VARCHAR NOT NULL
            )
            """,
        ),
    ),
    Migration(
        "0010_requests_policy_columns",
        add_columns_ddl("requests", REQUEST_COLUMNS[REQUESTS_V2_COLUMNS:]),
    ),
    Migration(
        "0011_api_keys",
        (
            # suite.keys: gateway keys. Only a salted HMAC of the secret; never the key.
            """
            CREATE TABLE IF NOT EXISTS api_keys (
                key_id VARCHAR PRIMARY KEY,
                tenant VARCHAR NOT NULL,
                name VARCHAR,
                routes VARCHAR[] NOT NULL,
                rpm INTEGER,
                tpm INTEGER,
                budget_usd_day DOUBLE,
                budget_usd_month DOUBLE,
                created_at TIMESTAMP NOT NULL,
                created_by VARCHAR NOT NULL,
                expires_at TIMESTAMP,
                revoked_at TIMESTAMP,
                revoked_by VARCHAR,
                salt VARCHAR NOT NULL,
                hash VARCHAR NOT NULL,
                display_prefix VARCHAR NOT NULL,
                last4 VARCHAR NOT NULL
            )
            """,
        ),
    ),
    Migration(
        "0012_catalog_caller_column",
        # The service that made a call, as an x-aiops-caller header names it (suite.catalog).
        add_columns_ddl("requests", tuple(c for c in REQUEST_COLUMNS if c.name == "caller")),
    ),
)
