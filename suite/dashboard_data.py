"""The small aggregates the dashboards show, each a function with its SQL beside it.

Pages call these (cached) and never query `requests` row by row: filters are pushed down
into SQL, series are grouped in DuckDB and samples end in LIMIT. Reads only, except the
one change-lifecycle fallback at the end (used while suite.changes has no such step).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import polars as pl

from suite import audit
from suite.clock import utc_now
from suite.errors import StoreError
from suite.store import Store


class _HeldConnection(Store):
    """A Store whose reads all run on one read-only connection that is already open (see
    `reader`); writing through it is refused."""

    def __init__(self, base: Store, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(base.home, lock_timeout=base.lock_timeout)
        self._schema_ready = True
        self._con = con

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self._con

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        raise StoreError("a dashboard reader is read-only: write through a Store of its own")
        yield self._con  # pragma: no cover


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


@contextmanager
def reader(home: str | Path) -> Iterator[Store]:
    """One page load's reads on ONE read-only connection (one unit of work under the shared
    lock). Opening DuckDB costs tens of milliseconds on a loaded machine, and a page runs
    up to a dozen small queries: opened once, not per query, they stay well under the
    render target. The Store per home is kept, so its schema check runs once a process."""
    key = str(Path(home).resolve())
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = Store(home)
    with store.read() as con:
        yield _HeldConnection(store, con)


# The time ranges every page offers, in minutes (anchored at the newest data).
TIME_RANGES = {
    "Last hour": 60,
    "Last 6 hours": 360,
    "Last 24 hours": 1440,
    "Last 7 days": 10080,
    "Last 30 days": 43200,
}

# Columns of `api_keys` never shown (the salted hash and anything like it).
_SECRET_COLUMN_HINTS = ("hash", "secret", "salt", "token", "password")


def has_table(store: Store, name: str) -> bool:
    return bool(
        store.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).item()
    )


def table_columns(store: Store, name: str) -> list[str]:
    return store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        [name],
    )["column_name"].to_list()


def table_count(store: Store, name: str) -> int:
    if not has_table(store, name):
        return 0
    return int(store.query(f"SELECT count(*) FROM {name}").item())


# -- overview ---------------------------------------------------------------------------------
def data_span(store: Store) -> tuple[datetime | None, datetime | None]:
    """First and last minute with traffic in the rollups."""
    row = store.query(
        "SELECT min(minute) AS first, max(minute) AS last FROM metrics_1m "
        "WHERE dimension = 'service'"
    ).row(0)
    return row[0], row[1]


def golden_signals(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    """Per service over [since, until): rate, error share, p95 latency, saturation (average
    calls in flight, by Little's law: rate x mean latency), tokens and cost."""
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
               sum(requests * latency_mean_ms) / 60000.0
                   / greatest(date_diff('minute', ?::TIMESTAMP, ?::TIMESTAMP), 1) AS in_flight,
               sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
               sum(cost_usd) AS cost_usd
        FROM metrics_1m
        WHERE dimension = 'service' AND minute >= ? AND minute < ?
        GROUP BY service ORDER BY calls DESC
        """,
        [since, until, since, until, since, until],
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


def service_limit_use(store: Store) -> pl.DataFrame:
    """Saturation where a limit is known: per service, the latest forecast run's current
    busiest-minute rate against its `max_rps` limit, in percent (empty without limits)."""
    if "current_value" not in table_columns(store, "forecast_runs"):
        return pl.DataFrame(schema={"service": pl.String, "limit_use_pct": pl.Float64})
    return store.query(
        """
        SELECT service, 100.0 * current_value / limit_value AS limit_use_pct
        FROM forecast_runs
        WHERE dimension = 'service' AND metric = 'rps_peak' AND limit_value > 0
              AND current_value IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY service ORDER BY run_at DESC) = 1
        """
    )


def open_incidents(store: Store) -> pl.DataFrame:
    """Incidents not resolved yet, newest first (empty before the incidents table exists)."""
    if not has_table(store, "incidents"):
        return pl.DataFrame()
    return store.query(
        "SELECT id, severity, status, service, signal, title, opened_at, assignee FROM incidents "
        "WHERE status <> 'resolved' ORDER BY opened_at DESC LIMIT 50"
    )


def recent_changes(store: Store, limit: int = 10) -> pl.DataFrame:
    return store.query(
        "SELECT id, ts, service, kind, status, summary, source FROM changes "
        "ORDER BY ts DESC, id DESC LIMIT ?",
        [limit],
    )


def llm_spend_since(store: Store, since: datetime) -> tuple[float, int]:
    """(USD, LLM calls) since `since` from the raw rows (today is small next to 10M rows)."""
    row = store.query(
        "SELECT coalesce(sum(cost_usd), 0) AS usd, count(*) AS calls FROM requests "
        "WHERE kind = 'llm' AND ts >= ?",
        [since],
    ).row(0)
    return float(row[0]), int(row[1])


# -- charts -----------------------------------------------------------------------------------
def figure_by(
    df: pl.DataFrame,
    x: str,
    y: str,
    color: str,
    title: str,
    *,
    kind: str = "line",
    log_y: bool = False,
) -> Any:
    """One trace per value of `color` straight from polars: what plotly.express draws,
    at a quarter of its cost (px goes through pandas and its group-by; on the Overview its
    three line charts took ~0.4 s of a render)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if df.height:
        for (name,), part in df.sort(color, x).partition_by(color, as_dict=True).items():
            xs, ys = part[x].to_list(), part[y].to_list()
            if kind == "bar":
                fig.add_bar(x=xs, y=ys, name=str(name))
            else:
                fig.add_scatter(x=xs, y=ys, name=str(name), mode="lines")
    fig.update_layout(
        title=title, xaxis_title=x, yaxis_title=y, legend_title_text=color,
        barmode="relative" if kind == "bar" else None,
    )  # fmt: skip
    if log_y:
        fig.update_yaxes(type="log")
    return fig


# -- SLOs -------------------------------------------------------------------------------------
def slo_latest(store: Store) -> pl.DataFrame:
    """The newest status row of each SLO."""
    return store.query(
        "SELECT slo, service, kind, objective, window_days, budget_remaining, alert_level, "
        "burn_5m, burn_30m, burn_1h, burn_6h, burn_3d, burn_window, events_window, "
        "bad_events_window, incident_id, computed_at FROM slo_status "
        "QUALIFY row_number() OVER (PARTITION BY slo ORDER BY computed_at DESC) = 1 ORDER BY slo"
    )


def slo_history(store: Store, slo: str, limit: int = 2000) -> pl.DataFrame:
    """One SLO's status over time (newest `limit` runs), oldest first."""
    return store.query(
        "SELECT * FROM (SELECT computed_at, budget_remaining, burn_5m, burn_30m, burn_1h, "
        "burn_6h, burn_3d, alert_level FROM slo_status WHERE slo = ? "
        "ORDER BY computed_at DESC LIMIT ?) ORDER BY computed_at",
        [slo, limit],
    )


# -- traffic explorer ---------------------------------------------------------------------------
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "no response")
_STATUS_SQL = {
    "2xx": "status BETWEEN 200 AND 299",
    "3xx": "status BETWEEN 300 AND 399",
    "4xx": "status BETWEEN 400 AND 499",
    "5xx": "status >= 500",
    "no response": "status IS NULL",
}
UNROUTED = "(unrouted)"


class TrafficFilter(NamedTuple):
    """What the traffic explorer's filters select; every field becomes SQL, never pandas."""

    since: datetime
    until: datetime
    services: tuple[str, ...] = ()
    status_classes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    path_contains: str = ""


def _in(column: str, values: tuple[str, ...], params: list[Any]) -> str:
    params.extend(values)
    return f"{column} IN ({', '.join('?' for _ in values)})"


def traffic_where(f: TrafficFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of a filter over `requests`."""
    params: list[Any] = [f.since, f.until]
    parts = ["ts >= ?", "ts < ?"]
    if f.services:
        named = tuple(s for s in f.services if s != UNROUTED)
        alts = [_in("route", named, params)] if named else []
        if UNROUTED in f.services:
            alts.append("route IS NULL")
        parts.append("(" + " OR ".join(alts) + ")")
    if f.status_classes:
        parts.append("(" + " OR ".join(_STATUS_SQL[c] for c in f.status_classes) + ")")
    for column, values in (
        ("kind", f.kinds),
        ("llm_model", f.models),
        ("tenant", f.tenants),
        ("api_key_id", f.keys),
    ):
        if values:
            parts.append(_in(column, values, params))
    if f.path_contains:
        parts.append("contains(path, ?)")
        params.append(f.path_contains)
    return " AND ".join(parts), params


def latest_request_ts(store: Store) -> datetime | None:
    return store.query("SELECT max(ts) FROM requests").item()


def filter_options(store: Store, since: datetime, until: datetime) -> dict[str, list[str]]:
    """Values the filters offer, from the rollups (services, models, tenants) and the keys
    table (or a bounded distinct over the range before there is one)."""
    dims = store.query(
        "SELECT DISTINCT dimension, CASE WHEN dimension = 'service' THEN service ELSE key END "
        "AS value FROM metrics_1m WHERE minute >= ? AND minute < ? ORDER BY value",
        [since - timedelta(minutes=1), until],
    )
    by_dim: dict[str, list[str]] = {}
    for dim, value in dims.iter_rows():
        by_dim.setdefault(dim, []).append(value)
    by_dim["kind"] = ["http", "llm", "mcp"]
    if table_count(store, "api_keys"):
        keys = store.query("SELECT key_id FROM api_keys ORDER BY key_id")
    else:
        keys = store.query(
            "SELECT DISTINCT api_key_id AS key_id FROM requests WHERE ts >= ? AND ts < ? "
            "AND api_key_id IS NOT NULL ORDER BY 1 LIMIT 500",
            [since, until],
        )
    by_dim["key"] = keys["key_id"].to_list()
    return {
        "services": by_dim.get("service", []),
        "models": by_dim.get("model", []),
        "tenants": by_dim.get("tenant", []),
        "kinds": by_dim.get("kind", []),
        "keys": by_dim.get("key", []),
    }


def traffic_rollup_where(f: TrafficFilter) -> tuple[str, list[Any]] | None:
    """The WHERE clause over `metrics_1m` that answers the same filter, when the minute
    rollups can (time, services, and models or tenants); None when only raw rows can."""
    if f.status_classes or f.kinds or f.keys or f.path_contains or (f.models and f.tenants):
        return None
    dimension, keys = (
        ("model", f.models) if f.models else ("tenant", f.tenants) if f.tenants else ("service", ())
    )
    params: list[Any] = [dimension, f.since, f.until]
    parts = ["dimension = ?", "minute >= ?", "minute < ?"]
    if keys:
        parts.append(_in("key", keys, params))
    if f.services:
        parts.append(_in("service", f.services, params))
    return " AND ".join(parts), params


def _rollup_for(store: Store, f: TrafficFilter) -> tuple[str, list[Any]] | None:
    """The rollup clause, but only when every minute of the range is rolled up (none is
    waiting in rollup_dirty_minutes): fresh rows the rollup job has not seen count too."""
    rollup = traffic_rollup_where(f)
    if rollup is None:
        return None
    waiting = store.query(
        "SELECT count(*) FROM rollup_dirty_minutes WHERE minute >= ? AND minute < ?",
        [f.since, f.until],
    ).item()
    return None if waiting else rollup


def traffic_source(store: Store, f: TrafficFilter) -> str:
    return "rollups" if _rollup_for(store, f) is not None else "requests"


# The 5xx and 4xx counts the rollup job keeps (suite.rollup), over raw rows.
_RAW_5XX = (
    "count(*) FILTER (WHERE status >= 500 OR (status IS NULL AND error IS NOT NULL "
    "AND error <> 'client_disconnected'))"
)
_RAW_4XX = "count(*) FILTER (WHERE status BETWEEN 400 AND 499)"
# A latency over many minutes from the rollups: the request-weighted mean of the minutes'
# percentile (what suite.forecast calls the typical p95).
_WEIGHTED = "sum({col} * requests) / nullif(sum(requests) FILTER (WHERE {col} IS NOT NULL), 0)"


def traffic_totals(store: Store, f: TrafficFilter) -> dict[str, Any]:
    """Calls, 5xx, 4xx, p95 and cost of the filter: from the minute rollups when they can
    answer it (exact counts, typical p95), else from the raw rows (approximate p95)."""
    rollup = _rollup_for(store, f)
    if rollup is not None:
        where, params = rollup
        return store.query(
            f"""
            SELECT coalesce(sum(requests), 0) AS calls, coalesce(sum(errors_5xx), 0) AS errors_5xx,
                   coalesce(sum(errors_4xx), 0) AS errors_4xx,
                   {_WEIGHTED.format(col="latency_p95_ms")} AS p95_ms, sum(cost_usd) AS cost_usd
            FROM metrics_1m WHERE {where}
            """,
            params,
        ).row(0, named=True)
    where, params = traffic_where(f)
    return store.query(
        f"""
        SELECT count(*) AS calls, {_RAW_5XX} AS errors_5xx, {_RAW_4XX} AS errors_4xx,
               approx_quantile(duration_ms, 0.95) AS p95_ms, sum(cost_usd) AS cost_usd
        FROM requests WHERE {where}
        """,
        params,
    ).row(0, named=True)


def traffic_series(store: Store, f: TrafficFilter, bucket_minutes: int) -> pl.DataFrame:
    """Per bucket: calls per minute, 5xx and 4xx per minute, p50/p95 latency (rollups when
    they can answer the filter, else raw rows)."""
    rollup = _rollup_for(store, f)
    b = [bucket_minutes] * 4
    if rollup is not None:
        where, params = rollup
        return store.query(
            f"""
            SELECT time_bucket(to_minutes(?::BIGINT), minute) AS t,
                   sum(requests) / ?::DOUBLE AS calls_per_min,
                   sum(errors_5xx) / ?::DOUBLE AS errors_per_min,
                   sum(errors_4xx) / ?::DOUBLE AS client_errors_per_min,
                   {_WEIGHTED.format(col="latency_p50_ms")} AS p50_ms,
                   {_WEIGHTED.format(col="latency_p95_ms")} AS p95_ms
            FROM metrics_1m WHERE {where}
            GROUP BY t ORDER BY t
            """,
            [*b, *params],
        )
    where, params = traffic_where(f)
    return store.query(
        f"""
        SELECT time_bucket(to_minutes(?::BIGINT), ts) AS t,
               count(*) / ?::DOUBLE AS calls_per_min,
               {_RAW_5XX} / ?::DOUBLE AS errors_per_min,
               {_RAW_4XX} / ?::DOUBLE AS client_errors_per_min,
               approx_quantile(duration_ms, 0.5) AS p50_ms,
               approx_quantile(duration_ms, 0.95) AS p95_ms
        FROM requests WHERE {where}
        GROUP BY t ORDER BY t
        """,
        [*b, *params],
    )


SAMPLE_COLUMNS = (
    "id", "ts", "route", "method", "path", "status", "error", "duration_ms", "kind",
    "llm_model", "tenant", "api_key_id", "upstream", "cost_usd",
)  # fmt: skip


def traffic_sample(store: Store, f: TrafficFilter, limit: int = 200) -> pl.DataFrame:
    """The newest `limit` matching requests."""
    where, params = traffic_where(f)
    return store.query(
        f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM requests WHERE {where} ORDER BY ts DESC LIMIT ?",
        [*params, limit],
    )


def request_detail(store: Store, request_id: str) -> dict[str, Any] | None:
    """One request's row (every column) and, if captured, its redacted body under "body"."""
    df = store.query("SELECT * FROM requests WHERE id = ?", [request_id])
    if df.is_empty():
        return None
    row = df.row(0, named=True)
    bodies = store.query("SELECT * FROM request_bodies WHERE request_id = ? LIMIT 1", [request_id])
    row["body"] = None if bodies.is_empty() else bodies.row(0, named=True)
    return row


# -- LLM usage and cost -----------------------------------------------------------------------
LLM_DIMENSIONS = {
    "model": "llm_model",
    "provider": "llm_provider",
    "tenant": "tenant",
    "key": "api_key_id",
    "route": "route",
}


def llm_usage_by_all(store: Store, since: datetime, until: datetime) -> dict[str, pl.DataFrame]:
    """LLM calls grouped by model, provider, tenant, key and route: spend, tokens, TTFT,
    tokens/s, cache hits, fallbacks, unpriced and failed calls.

    Two scans: the additive measures grouped by all five columns at once (a few dozen rows,
    summed per dimension here), and the exact TTFT percentiles in GROUPING SETS. One
    GROUPING SETS query with approx_quantile in it took 1.6 s over a week of 10M requests;
    these two take about 0.4 s."""
    columns = list(LLM_DIMENSIONS.values())
    fine = store.query(
        f"""
        SELECT {", ".join(columns)},
               count(*) AS calls,
               sum(cost_usd) AS cost_usd,
               sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens,
               sum(output_tokens_per_s) AS tps_sum,
               count(output_tokens_per_s) AS tps_n,
               count(*) FILTER (WHERE cache_hit) AS cache_hits,
               count(*) FILTER (WHERE contains(fallback_chain, ' > ')) AS fallbacks,
               count(*) FILTER (WHERE llm_unpriced) AS unpriced_calls,
               count(*) FILTER (WHERE status >= 500 OR status = 429) AS failed
        FROM requests
        WHERE kind = 'llm' AND ts >= ? AND ts < ?
        GROUP BY ALL
        """,
        [since, until],
    )
    ttft = store.query(
        f"""
        SELECT {", ".join(f"grouping({c}) AS g_{c}" for c in columns)}, {", ".join(columns)},
               quantile_cont(ttft_ms, [0.5, 0.95]) AS q
        FROM requests
        WHERE kind = 'llm' AND ts >= ? AND ts < ? AND ttft_ms IS NOT NULL
        GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in columns)})
        """,
        [since, until],
    )
    measures = (
        "calls", "cost_usd", "prompt_tokens", "completion_tokens", "ttft_p50_ms", "ttft_p95_ms",
        "tokens_per_s", "cache_hits", "fallbacks", "unpriced_calls", "failed",
    )  # fmt: skip
    additive = ("calls", "cost_usd", "prompt_tokens", "completion_tokens", "cache_hits",
                "fallbacks", "unpriced_calls", "failed")  # fmt: skip
    out = {}
    for dim, column in LLM_DIMENSIONS.items():
        key = pl.col(column).cast(pl.String).fill_null("(none)").alias(dim)
        if fine.height:
            # sum() of an all-null column is 0 in polars, NULL in SQL: keep SQL's answer
            sums = [
                pl.when(pl.col(c).is_null().all()).then(None).otherwise(pl.col(c).sum()).alias(c)
                for c in additive
            ]
            part = fine.group_by(key).agg(
                *sums,
                (pl.col("tps_sum").sum() / pl.col("tps_n").sum().replace(0, None)).alias(
                    "tokens_per_s"
                ),
            )
        else:
            part = fine.select(key, *additive, pl.lit(None, pl.Float64).alias("tokens_per_s"))
        quantiles = (
            ttft.filter(pl.col(f"g_{column}") == 0).select(
                key,
                pl.col("q").list.get(0).alias("ttft_p50_ms"),
                pl.col("q").list.get(1).alias("ttft_p95_ms"),
            )
            if ttft.height
            else pl.DataFrame(
                schema={dim: pl.String, "ttft_p50_ms": pl.Float64, "ttft_p95_ms": pl.Float64}
            )
        )
        out[dim] = (
            part.join(quantiles, on=dim, how="left")
            .select(dim, *measures)
            .sort(["cost_usd", "calls"], descending=True, nulls_last=True)
        )
    return out


def llm_usage_by(store: Store, dimension: str, since: datetime, until: datetime) -> pl.DataFrame:
    return llm_usage_by_all(store, since, until)[dimension]


def llm_series(store: Store, since: datetime, until: datetime, bucket_minutes: int) -> pl.DataFrame:
    return store.query(
        """
        SELECT time_bucket(to_minutes(?::BIGINT), ts) AS t, coalesce(llm_model, '(none)') AS model,
               sum(cost_usd) AS cost_usd,
               sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens
        FROM requests WHERE kind = 'llm' AND ts >= ? AND ts < ?
        GROUP BY ALL ORDER BY t, model
        """,
        [bucket_minutes, since, until],
    )


def llm_unpriced_models(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    return store.query(
        """
        SELECT llm_provider AS provider, llm_model AS model, count(*) AS calls,
               sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)) AS tokens,
               max(ts) AS last_seen
        FROM requests WHERE kind = 'llm' AND llm_unpriced AND ts >= ? AND ts < ?
        GROUP BY ALL ORDER BY tokens DESC
        """,
        [since, until],
    )


def llm_fallback_chains(
    store: Store, since: datetime, until: datetime, limit: int = 20
) -> pl.DataFrame:
    return store.query(
        """
        SELECT fallback_chain, coalesce(llm_alias, llm_requested_model) AS asked_for,
               llm_model AS served_by, count(*) AS calls, max(ts) AS last_seen
        FROM requests WHERE kind = 'llm' AND contains(fallback_chain, ' > ')
              AND ts >= ? AND ts < ?
        GROUP BY ALL ORDER BY calls DESC LIMIT ?
        """,
        [since, until, limit],
    )


def safe_key_columns(store: Store) -> list[str]:
    """The `api_keys` columns that may be shown: never the hash or anything like it."""
    return [
        c
        for c in table_columns(store, "api_keys")
        if not any(h in c.lower() for h in _SECRET_COLUMN_HINTS)
    ]


def key_budget_burn(store: Store, now: datetime) -> pl.DataFrame:
    """Per gateway key: its budgets against the recorded spend today and this month (UTC)."""
    if not has_table(store, "api_keys"):
        return pl.DataFrame()
    cols = set(table_columns(store, "api_keys"))
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)

    def col(name: str, sql_type: str = "DOUBLE") -> str:
        return f"k.{name}" if name in cols else f"NULL::{sql_type}"

    return store.query(
        f"""
        WITH month AS (
            -- only priced calls carry a cost: the month's scan skips the rest early
            SELECT api_key_id, sum(cost_usd) AS spent_month_usd
            FROM requests WHERE ts >= ? AND cost_usd IS NOT NULL AND api_key_id IS NOT NULL
            GROUP BY api_key_id
        ),
        today AS (
            SELECT api_key_id, sum(cost_usd) AS spent_today_usd, count(*) AS calls_today
            FROM requests WHERE ts >= ? AND api_key_id IS NOT NULL GROUP BY api_key_id
        ),
        spend AS (
            SELECT coalesce(m.api_key_id, t.api_key_id) AS api_key_id, t.spent_today_usd,
                   m.spent_month_usd, t.calls_today
            FROM month m FULL JOIN today t ON t.api_key_id = m.api_key_id
        )
        SELECT k.key_id, {col("tenant", "VARCHAR")} AS tenant,
               {col("revoked_at", "TIMESTAMP")} IS NOT NULL AS revoked,
               coalesce(s.calls_today, 0) AS calls_today,
               {col("budget_usd_day")} AS budget_usd_day,
               coalesce(s.spent_today_usd, 0) AS spent_today_usd,
               100.0 * coalesce(s.spent_today_usd, 0) / nullif({col("budget_usd_day")}, 0)
                   AS day_budget_used_pct,
               {col("budget_usd_month")} AS budget_usd_month,
               coalesce(s.spent_month_usd, 0) AS spent_month_usd,
               100.0 * coalesce(s.spent_month_usd, 0) / nullif({col("budget_usd_month")}, 0)
                   AS month_budget_used_pct
        FROM api_keys k LEFT JOIN spend s ON s.api_key_id = k.key_id
        ORDER BY day_budget_used_pct DESC NULLS LAST, month_budget_used_pct DESC NULLS LAST,
                 k.key_id
        """,
        [month, day],
    )


# -- incidents --------------------------------------------------------------------------------
def incidents_filtered(
    store: Store,
    *,
    statuses: tuple[str, ...] = (),
    severities: tuple[str, ...] = (),
    services: tuple[str, ...] = (),
    since: datetime | None = None,
    limit: int = 500,
) -> pl.DataFrame:
    params: list[Any] = []
    parts = ["true"]
    for column, values in (("status", statuses), ("severity", severities), ("service", services)):
        if values:
            parts.append(_in(column, values, params))
    if since is not None:
        parts.append("(opened_at >= ? OR status <> 'resolved')")
        params.append(since)
    return store.query(
        f"SELECT id, severity, status, service, signal, title, opened_at, acknowledged_at, "
        f"resolved_at, assignee, anomaly_count, source FROM incidents WHERE {' AND '.join(parts)} "
        "ORDER BY opened_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )


def incident_services(store: Store) -> list[str]:
    return store.query("SELECT DISTINCT service FROM incidents ORDER BY 1")["service"].to_list()


def incident_window(inc: dict[str, Any]) -> tuple[datetime, datetime]:
    """The time around an incident its charts show: an hour before it opened to half an
    hour after it ended (or after it was last seen)."""
    end = inc.get("resolved_at") or inc.get("last_seen_at") or inc["opened_at"]
    return inc["opened_at"] - timedelta(hours=1), end + timedelta(minutes=30)


def incident_signals(store: Store, service: str, since: datetime, until: datetime) -> pl.DataFrame:
    """The service's minute rollups around an incident, one row per minute and signal."""
    return store.query(
        """
        UNPIVOT (
            SELECT minute, requests::DOUBLE AS request_rate, error_ratio, latency_p95_ms,
                   (coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0))::DOUBLE AS tokens
            FROM metrics_1m WHERE dimension = 'service' AND service = ?
                  AND minute >= ? AND minute < ?
        ) ON request_rate, error_ratio, latency_p95_ms, tokens INTO NAME signal VALUE value
        ORDER BY signal, minute
        """,
        [service, since, until],
    )


def incident_anomalies(
    store: Store, incident_id: int, service: str, since: datetime, until: datetime
) -> pl.DataFrame:
    return store.query(
        "SELECT ts, signal, dimension, key, value, score, detector, threshold, incident_id "
        "FROM anomalies WHERE (incident_id = ? OR (service = ? AND ts >= ? AND ts < ?)) "
        "ORDER BY ts LIMIT 2000",
        [incident_id, service, since, until],
    )


def incident_suspects(store: Store, incident_id: int) -> pl.DataFrame:
    return store.query(
        """
        SELECT s.rank, s.score, s.reason, c.id AS change_id, c.ts, c.service, c.kind, c.status,
               c.risk, c.summary
        FROM incident_suspects s LEFT JOIN changes c ON c.id = s.change_id
        WHERE s.incident_id = ? ORDER BY s.rank
        """,
        [incident_id],
    )


def related_requests(
    store: Store, service: str, since: datetime, until: datetime, limit: int = 100
) -> tuple[int, pl.DataFrame]:
    """(how many, the newest `limit`) failed calls of the service in the window."""
    where = (
        "route = ? AND ts >= ? AND ts < ? AND (status >= 500 OR status = 429 "
        "OR (status IS NULL AND error IS NOT NULL))"
    )
    params = [service, since, until]
    n = int(store.query(f"SELECT count(*) FROM requests WHERE {where}", params).item())
    rows = store.query(
        f"SELECT id, ts, method, path, status, error, duration_ms, tenant, upstream "
        f"FROM requests WHERE {where} ORDER BY ts DESC LIMIT ?",
        [*params, limit],
    )
    return n, rows


# -- changes ----------------------------------------------------------------------------------
def changes_in_range(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    services: tuple[str, ...] = (),
    kinds: tuple[str, ...] = (),
    statuses: tuple[str, ...] = (),
    limit: int = 1000,
) -> pl.DataFrame:
    params: list[Any] = [since, until]
    parts = ["coalesce(window_end, ts) >= ?", "coalesce(window_start, ts) < ?"]
    for column, values in (("service", services), ("kind", kinds), ("status", statuses)):
        if values:
            parts.append(_in(column, values, params))
    return store.query(
        f"""
        SELECT id, ts, service, kind, status, risk, summary, source, change_type,
               window_start, window_end, requested_by, approved_by, approved_at,
               implemented_at, closed_at
        FROM changes WHERE {" AND ".join(parts)}
        ORDER BY ts DESC, id DESC LIMIT ?
        """,
        [*params, limit],
    )


def change_events(store: Store, change_id: str) -> pl.DataFrame:
    return store.query(
        "SELECT ts, from_status, to_status, actor, note FROM change_events WHERE change_id = ? "
        "ORDER BY ts, id",
        [change_id],
    )


def change_failure_rate(
    store: Store, since: datetime, until: datetime, hours: float = 24.0
) -> pl.DataFrame:
    """Per service (suite.changes.failure_rate, as `aiops changes` counts it): changes that
    took effect in the range, how many were followed by an incident on that service within
    `hours`, the share in percent, and how many were rolled back."""
    from suite.changes import failure_rate

    df = failure_rate(store, window_hours=hours, since=since, now=until)
    return df.with_columns((pl.col("failure_rate") * 100.0).alias("failure_rate_pct"))


def change_steps() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each lifecycle action: (the status it leads to, the statuses it may start from)."""
    from suite.changes import ACTIONS

    return dict(ACTIONS)


def change_lifecycle_action(
    store: Store,
    change_id: str,
    action: str,
    *,
    actor: str | None = None,
    note: str | None = None,
    source: str = "dashboard",
) -> dict[str, Any]:
    """A dashboard lifecycle button, through suite.changes.transition (the function the
    CLI uses: checked, written with its change_events and audit rows in one transaction)."""
    from suite.changes import transition

    before = store.query("SELECT status FROM changes WHERE id = ?", [change_id])
    after = transition(
        store, change_id, action, by=actor or audit.current_actor(), note=note, source=source
    )
    return {
        "id": change_id,
        "from": before.item() if before.height else None,
        "to": after["status"],
        "actor": actor,
    }


# -- capacity ---------------------------------------------------------------------------------
def forecast_latest_runs(store: Store) -> pl.DataFrame:
    """The newest forecast run of each series and metric, soonest limit first."""
    return store.query(
        """
        SELECT *, hours_to_limit / 24.0 AS days_to_limit
        FROM forecast_runs
        QUALIFY row_number() OVER (PARTITION BY service, dimension, key, metric
                                   ORDER BY run_at DESC) = 1
        ORDER BY hours_to_limit NULLS LAST, service, dimension, key, metric
        """
    )


def forecast_points(
    store: Store, run_at: datetime, service: str, dimension: str, key: str, metric: str
) -> pl.DataFrame:
    return store.query(
        "SELECT ts, yhat, lower, upper FROM forecasts WHERE run_at = ? AND service = ? "
        "AND dimension = ? AND key = ? AND metric = ? ORDER BY ts",
        [run_at, service, dimension, key, metric],
    )


def metric_history_hourly(
    store: Store, service: str, dimension: str, key: str, metric: str, since: datetime
) -> pl.DataFrame:
    """The hourly values the forecast job fits (suite.forecast.load_hourly), for one series
    and metric: columns ts, value (empty for a metric it does not know)."""
    from suite.forecast import load_hourly

    hourly = load_hourly(store, since, utc_now() + timedelta(days=1), (service, dimension, key))
    if metric not in hourly.columns:
        return pl.DataFrame()
    return hourly.select(pl.col("hour").alias("ts"), pl.col(metric).alias("value")).sort("ts")


# -- services ---------------------------------------------------------------------------------
def service_catalog(store: Store) -> pl.DataFrame:
    """Every service, with its dependency counts and recent traffic where it has any."""
    return store.query(
        """
        SELECT s.name AS service, s.owner, s.tier, s.sla_target, s.description, s.source,
               s.first_seen,
               (SELECT count(*) FROM service_dependencies d WHERE d.service = s.name)
                   AS depends_on,
               (SELECT count(*) FROM service_dependencies d WHERE d.depends_on = s.name)
                   AS depended_on_by,
               (SELECT count(*) FROM incidents i WHERE i.service = s.name
                       AND i.status <> 'resolved') AS open_incidents
        FROM services s ORDER BY s.tier NULLS LAST, s.name
        """
    )


def service_dependencies(store: Store) -> pl.DataFrame:
    return store.query(
        "SELECT service, depends_on, source, calls, first_seen, last_seen "
        "FROM service_dependencies ORDER BY service, depends_on"
    )


def problems_by_recurrence(store: Store, limit: int = 100) -> pl.DataFrame:
    return store.query(
        "SELECT id, service, title, status, incident_count, known_error, root_cause, workaround, "
        "first_seen, last_seen FROM problems ORDER BY incident_count DESC, last_seen DESC LIMIT ?",
        [limit],
    )


def sla_report(store: Store, month_start: datetime) -> pl.DataFrame:
    """The month's SLA report of suite.catalog (as `aiops services sla` prints it)."""
    from suite.catalog import sla_report as catalog_sla_report

    return catalog_sla_report(store, f"{month_start:%Y-%m}")


def graph_layout(nodes: list[str]) -> dict[str, tuple[float, float]]:
    """Nodes on a circle (the dependency graph is small: services of one gateway)."""
    n = max(len(nodes), 1)
    return {
        name: (math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n))
        for i, name in enumerate(nodes)
    }


# -- gateway ----------------------------------------------------------------------------------
def upstream_health(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    """Per route and upstream over the range: calls per minute, errors, p95, last seen."""
    return store.query(
        """
        SELECT coalesce(route, '(unrouted)') AS route, coalesce(upstream, '(none)') AS upstream,
               count(*) AS calls,
               count(*) / greatest(date_diff('minute', ?::TIMESTAMP, ?::TIMESTAMP), 1)
                   AS calls_per_min,
               100.0 * count(*) FILTER (WHERE status >= 500 OR (status IS NULL
                   AND error IS NOT NULL AND error <> 'client_disconnected')) / count(*)
                   AS error_pct,
               approx_quantile(duration_ms, 0.95) AS p95_ms,
               max(ts) AS last_seen,
               arg_max(error, ts) FILTER (WHERE error IS NOT NULL) AS last_error
        FROM requests WHERE ts >= ? AND ts < ?
        GROUP BY ALL ORDER BY route, upstream
        """,
        [since, until, since, until],
    )


def gateway_keys(store: Store, now: datetime) -> pl.DataFrame:
    """`api_keys` without any secret column, with calls in the last minute and today."""
    if not has_table(store, "api_keys"):
        return pl.DataFrame()
    cols = safe_key_columns(store)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    select = ", ".join(f"k.{c}" for c in cols)
    return store.query(
        f"""
        WITH usage AS (
            SELECT api_key_id, count(*) FILTER (WHERE ts >= ?) AS calls_last_min,
                   count(*) AS calls_today, sum(cost_usd) AS spent_today_usd,
                   max(ts) AS last_used
            FROM requests WHERE ts >= ? AND api_key_id IS NOT NULL GROUP BY api_key_id
        )
        SELECT {select}, coalesce(u.calls_last_min, 0) AS calls_last_min,
               coalesce(u.calls_today, 0) AS calls_today,
               coalesce(u.spent_today_usd, 0) AS spent_today_usd, u.last_used
        FROM api_keys k LEFT JOIN usage u ON u.api_key_id = k.key_id ORDER BY k.key_id
        """,
        [now - timedelta(minutes=1), day],
    )


def chaos_drills(run_dir: Path) -> list[dict[str, Any]]:
    """Active drills from `<home>/run/chaos.json` (a list, or {"drills": [...]}, or one
    object per route); a missing or unreadable file means none."""
    path = run_dir / "chaos.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if isinstance(raw, dict):
        items = raw.get("drills", raw.get("faults"))
        if items is None:
            items = [
                {"route": k, **v} if isinstance(v, dict) else {"route": k, "fault": v}
                for k, v in raw.items()
            ]
    else:
        items = raw
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def chaos_changes(store: Store, limit: int = 50) -> pl.DataFrame:
    return store.query(
        "SELECT id, ts, service, status, summary, window_start, window_end FROM changes "
        "WHERE kind = 'chaos' ORDER BY ts DESC LIMIT ?",
        [limit],
    )


def route_version_usage(store: Store, since: datetime, until: datetime) -> pl.DataFrame:
    """Who still calls which route version (routes that carry one)."""
    return store.query(
        "SELECT route, route_version, coalesce(tenant, '(none)') AS tenant, count(*) AS calls, "
        "max(ts) AS last_seen FROM requests WHERE route_version IS NOT NULL AND ts >= ? "
        "AND ts < ? GROUP BY ALL ORDER BY route, route_version, calls DESC",
        [since, until],
    )


def audit_entries(store: Store, target_kind: str, target_id: str, limit: int = 50) -> pl.DataFrame:
    return store.query(
        "SELECT ts, actor, action, source, detail FROM audit_log WHERE target_kind = ? "
        "AND target_id = ? ORDER BY ts DESC, id DESC LIMIT ?",
        [target_kind, target_id, limit],
    )


def gateway_processes(run_dir: Path) -> list[dict[str, Any]]:
    """The spool counters each gateway process writes to `<home>/run/gateway-<id>.json`."""
    rows = []
    for path in sorted(run_dir.glob("gateway-*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict):
            rows.append({"gateway": path.stem.removeprefix("gateway-"), **raw})
    return rows


def route_rows(config: Any) -> list[dict[str, Any]]:
    """One row per configured route: every field but credentials, as text."""
    from dataclasses import fields

    rows = []
    for route in config.routes:
        row: dict[str, Any] = {}
        for f in fields(route):
            if any(h in f.name.lower() for h in ("key", "secret", "token", "password")):
                continue
            value = getattr(route, f.name)
            if f.name == "upstreams":
                value = ", ".join(u.url for u in value)
            elif isinstance(value, tuple | list):
                value = ", ".join(str(v) for v in value)
            row[f.name] = None if value is None else str(value)
        rows.append(row)
    return rows
